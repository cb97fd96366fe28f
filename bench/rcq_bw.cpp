// rcq_bw: RDMA WRITE bandwidth and message rate of one RC connection built
// with rcq, measured and reported the way perftest's ib_write_bw does.
//
//   server:  rcq_bw [-d dev] [-x gid_index] [-s size] [-n iters] [-Q cq_mod] [-l post_list]
//                   [-p port] [-t timeout_s]
//   client:  rcq_bw [same options] <server host>
//
// The client keeps up to 128 WRITEs in flight (perftest's default tx depth)
// through rcq::send_queue, signaling one in every -Q (default 100, as
// perftest); with -l N it posts chains of N with one call (rcq::wr_chain)
// and, as perftest does, signals once per chain (-Q becomes N). The time
// runs from the first post to the last completion. The server only lends
// its memory and waits, bounded by -t (default 60 s), for the client to finish.
#include "perf_common.hpp"

namespace {

using namespace rcq_perf;

constexpr const char* usage =
    "usage: rcq_bw [-d dev] [-x gid_index] [-s size] [-n iters] [-Q cq_mod] [-l post_list]\n"
    "              [-p port] [-t timeout_s] [server_host]\n"
    "  server when no host is given; defaults: -s 65536, -n 5000, -Q 100, -l 1, -p 18515,\n"
    "  -t 60, the first device and its RoCE v2 GID. -n must be a multiple of -Q.\n";

/// Posts o.iters WRITEs of o.size bytes, `PostList` per call, one in `Every`
/// signaled; returns the time from the first post to the last completion.
struct result {
    clock::duration elapsed{};
    std::uint64_t completions = 0; // signaled requests, as polled from the CQ
};

template <std::size_t Every, std::size_t PostList>
result write_all(connection& conn, const options& o) {
    // A chain must fit beside the longest unsignaled run (send_queue's rule);
    // chains of PostList = Every requests leave none, so the queue still
    // holds at most sq_depth requests in flight, as perftest's does.
    rcq::send_queue<sq_depth + PostList - 1, Every> sq(std::move(conn.queue_pair()));
    // The queue owns the connection's QP until it is given back below.
    struct give_back {
        connection& c;
        decltype(sq)& q;
        ~give_back() { c.queue_pair() = std::move(q).release(); }
    } back{conn, sq};
    const auto size = static_cast<std::uint32_t>(o.size);
    const rcq::remote_slice to = rcq::remote_region::of(conn.remote()).slice(0, size);
    const ibv_sge sge = rcq::local(conn.buffer_policy(), 0, size);

    // Every request writes the same bytes to the same place, as perftest's do.
    rcq::wr_chain<PostList> chain;
    for (std::size_t k = 0; k < PostList; ++k) chain.set(k, rcq::write_op(sge, to, k));
    rcq::write_op single(sge, to, 0);
    auto post = [&] {
        if constexpr (PostList == 1) return sq.post(single);
        else return sq.post(chain);
    };

    const rcq::deadline until = rcq::deadline::after(o.timeout);
    std::uint64_t completions = 0;
    auto reap = [&](auto done) {
        poll_until(conn.completion_queue(), until, "RDMA WRITE completions", done,
                   [&](const ibv_wc&) {
                       sq.retire();
                       ++completions;
                   });
    };

    const clock::time_point start = clock::now();
    for (std::uint64_t posted = 0; posted < o.iters;) {
        const int rc = post();
        if (rc == 0) {
            posted += PostList;
            continue;
        }
        if (rc != ENOSPC) rcq::throw_error("ibv_post_send", {}, rc);
        const std::size_t before = sq.outstanding();
        reap([&] { return sq.outstanding() < before; });
    }
    // -n is a multiple of -Q, so the last request was signaled and its
    // completion retires everything.
    reap([&] { return sq.outstanding() == 0; });
    return {clock::now() - start, completions};
}

} // namespace

int main(int argc, char** argv) {
    return run("rcq_bw", usage, [&] {
        options defaults;
        defaults.size = 65536;
        defaults.iters = 5000;
        defaults.cq_mod = 100;
        options o = parse(argc, argv, defaults, false, true);
        if (o.post_list > 1) {
            std::printf("%sPost List requested - CQ moderation will be the size of the post list\n",
                        rule);
            o.cq_mod = o.post_list;
        }
        if (o.iters % o.cq_mod != 0)
            throw usage_error("-n " + std::to_string(o.iters) + " is not a multiple of -Q " +
                              std::to_string(o.cq_mod) + " (the last WRITE must be signaled)");

        connection conn(handshake(o), connection_options(o, true));
        print_header(o.post_list > 1 ? "rcq RDMA_Write Post List BW Test" : "rcq RDMA_Write BW Test",
                     o, conn, true);
        conn.ready();
        if (!o.is_client()) {
            conn.ready(); // until the client has written everything
            std::printf(" (server: the client reports)\n%s", rule);
            return;
        }
        result r;
        if (o.post_list == 1)
            with_constant<signal_intervals>(o.cq_mod, [&](auto every) {
                r = write_all<decltype(every)::value, 1>(conn, o);
            });
        else
            with_constant<post_lists>(o.post_list, [&](auto n) {
                r = write_all<decltype(n)::value, decltype(n)::value>(conn, o);
            });
        conn.ready();
        print_bandwidth(o, r.elapsed);
        std::printf(" completions polled: %llu (for %llu WRITEs)\n%s",
                    static_cast<unsigned long long>(r.completions),
                    static_cast<unsigned long long>(o.iters), rule);
    });
}
