// rcq_bw: RDMA WRITE bandwidth and message rate of one RC connection built
// with rcq, measured and reported the way perftest's ib_write_bw does.
//
//   server:  rcq_bw [-d dev] [-x gid_index] [-s size] [-n iters] [-Q cq_mod] [-l post_list]
//                   [-p port] [-t timeout_s] [--check]
//   client:  rcq_bw [same options] <server host>
//
// The client keeps up to 128 WRITEs in flight (perftest's default tx depth)
// through rcq::send_queue, signaling one in every -Q (default 100, as
// perftest); with -l N it posts chains of N with one call (rcq::wr_chain)
// and, as perftest does, signals once per chain (-Q becomes N). The time
// runs from the first post to the last completion; -t (default 60 s) bounds
// each wait for a completion, not the run. The server only lends its memory
// and waits for the client to finish, which it learns when the client's
// handshake connection closes (the client exits after its last WRITE has
// completed, so every byte is in place by then).
//
// --check (both sides): WRITE k carries slot k % slots of the client's
// buffer, filled with a pattern, to the same slot on the server, which
// compares every slot once the client is done. Without it every WRITE
// carries the same bytes to the same place, as perftest's do.
//
// --async (client): the WRITEs go through rcq's asynchronous layer instead:
// 128 C++20 coroutines on one io_context (the tx depth), each awaiting its
// WRITEs one after the other (rcq::async_qp::async_write, use_awaitable,
// busy polling from the io_context); every WRITE is signaled, so compare
// with -Q 1. Not with -l or --check.
#include "perf_common.hpp"

#include <rcq/async.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <thread>

namespace {

using namespace rcq_perf;

constexpr const char* usage =
    "usage: rcq_bw [-d dev] [-x gid_index] [-s size] [-n iters] [-Q cq_mod] [-l post_list]\n"
    "              [-p port] [-t timeout_s] [--check] [--async] [server_host]\n"
    "  server when no host is given; defaults: -s 65536, -n 5000, -Q 100, -l 1, -p 18515,\n"
    "  -t 60 (per wait), the first device and its RoCE v2 GID. -n must be a multiple of -Q.\n"
    "  --check (give it to both sides) verifies every byte that arrived.\n";

/// With --check, WRITE k uses slot k % slots(size) of the first max_message
/// bytes on both sides.
std::size_t slots(std::size_t size) { return std::max<std::size_t>(1, max_message / size); }
std::byte pattern(std::size_t i) { return std::byte(static_cast<unsigned char>(i * 13 + (i >> 9) + 1)); }

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

    // Every request writes the same bytes to the same place, as perftest's
    // do; with --check, request k goes to slot k % slots instead.
    const rcq::remote_region server = rcq::remote_region::of(conn.remote());
    const std::size_t nslots = o.check ? slots(o.size) : 1;
    std::size_t next_slot = 0;
    rcq::wr_chain<PostList> chain;
    for (std::size_t k = 0; k < PostList; ++k) chain.set(k, rcq::write_op(sge, to, k));
    rcq::write_op single(sge, to, 0);
    std::vector<ibv_sge> slot_sges;
    std::vector<std::uint64_t> slot_addrs;
    for (std::size_t s = 0; o.check && s < nslots; ++s) {
        slot_sges.push_back(rcq::local(conn.buffer_policy(), s * o.size, size));
        slot_addrs.push_back(server.slice(s * o.size, size).addr);
    }
    auto post = [&] {
        if (o.check) {
            for (std::size_t k = 0; k < PostList; ++k, next_slot = (next_slot + 1) % nslots) {
                ibv_send_wr* wr = &single;
                if constexpr (PostList > 1) wr = &chain[k];
                wr->sg_list = &slot_sges[next_slot];
                wr->wr.rdma.remote_addr = slot_addrs[next_slot];
            }
        }
        if constexpr (PostList == 1) return sq.post(single);
        else return sq.post(chain);
    };

    std::uint64_t completions = 0;
    auto reap = [&](auto done) {
        poll_until(conn.completion_queue(), o.timeout, "RDMA WRITE completions", done,
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

/// --async: o.iters WRITEs by sq_depth coroutines, each awaiting its own.
result write_all_async(connection& conn, const options& o) {
    namespace asio = boost::asio;
    asio::io_context io(1);
    rcq::async_cq<connection::poll_type> cq(io.get_executor(), conn.poll_policy(),
                                            conn.completion_queue());
    rcq::async_qp<rcq::state::rts> q(cq, std::move(conn.queue_pair()));
    const auto size = static_cast<std::uint32_t>(o.size);
    const rcq::remote_slice to = rcq::remote_region::of(conn.remote()).slice(0, size);
    const ibv_sge sge = rcq::local(conn.buffer_policy(), 0, size);
    std::uint64_t completions = 0, failed = 0;
    auto writer = [&](std::uint64_t count) -> asio::awaitable<void> {
        for (std::uint64_t i = 0; i < count; ++i) {
            (void)co_await q.async_write(sge, to, asio::use_awaitable);
            ++completions;
        }
    };
    const clock::time_point start = clock::now();
    for (std::uint64_t w = 0; w < sq_depth; ++w)
        asio::co_spawn(io, writer(o.iters / sq_depth + (w < o.iters % sq_depth ? 1 : 0)),
                       [&](std::exception_ptr e) { failed += e != nullptr; });
    io.run_for(o.timeout);
    const clock::duration elapsed = clock::now() - start;
    if (failed != 0 || completions != o.iters)
        rcq::throw_invalid(std::to_string(completions) + " of " + std::to_string(o.iters) +
                           " asynchronous WRITEs completed");
    conn.queue_pair() = rcq::qp<rcq::state::rts>::adopt_unchecked(std::move(q).release());
    return {elapsed, completions};
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
        if (o.async && (o.post_list > 1 || o.check))
            throw usage_error("--async takes neither -l nor --check");
        print_header(o.async               ? "rcq RDMA_Write BW Test (coroutines)"
                     : o.post_list > 1 ? "rcq RDMA_Write Post List BW Test"
                                       : "rcq RDMA_Write BW Test",
                     o, conn, true);
        const std::size_t span = slots(o.size) * o.size;
        if (o.check && o.is_client())
            for (std::size_t i = 0; i < span; ++i) conn.buffer()[i] = pattern(i);
        conn.ready();
        if (!o.is_client()) {
            // Until the client has written everything and left: no deadline
            // of our own, the client bounds each of its waits by -t.
            while (!conn.peer_gone()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
            if (o.check) {
                for (std::size_t i = 0; i < span; ++i)
                    if (conn.buffer()[i] != pattern(i))
                        rcq::throw_invalid("--check: byte " + std::to_string(i) +
                                               " of the written region is wrong",
                                           "did the client run with --check too, and finish?");
                std::printf(" --check: all %zu bytes written are right\n", span);
            }
            std::printf(" (server: the client reports)\n%s", rule);
            return;
        }
        result r;
        if (o.async)
            r = write_all_async(conn, o);
        else if (o.post_list == 1)
            with_constant<signal_intervals>(o.cq_mod, [&](auto every) {
                r = write_all<decltype(every)::value, 1>(conn, o);
            });
        else
            with_constant<post_lists>(o.post_list, [&](auto n) {
                r = write_all<decltype(n)::value, decltype(n)::value>(conn, o);
            });
        print_bandwidth(o, r.elapsed);
        std::printf(" completions polled: %llu (for %llu WRITEs)\n%s",
                    static_cast<unsigned long long>(r.completions),
                    static_cast<unsigned long long>(o.iters), rule);
    });
}
