// rcq_bw: RDMA WRITE bandwidth and message rate of one RC connection built
// with rcq, measured and reported the way perftest's ib_write_bw does; with
// -q N, of N RC QPs on one CQ (rcq::resources), WRITE or SEND, as
// ib_write_bw -q N and ib_send_bw -q N.
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
// -q N (both sides, N >= 1): N QPs instead of one connection, as perftest's
// -q: one rcq::resources per side (one device context, PD, registered
// buffer and CQ), the server's rcq::listener accepting the N handshakes on
// one port, the client connecting N times (rcq::resources::connect). Every
// QP has its own rcq::send_queue of 128 (the tx depth is per QP, as
// perftest's) and -n is per QP, so N x -n messages go in all. The client
// goes round the QPs, posting on each as many as its queue takes, then
// polls the one shared CQ once, each completion going to its QP's queue by
// wc.qp_num (rcq::router): perftest's loop. With --op send the messages are
// SENDs (ib_send_bw's test): the server keeps min(-n, 512) receives posted
// on each QP (perftest's rx depth), reposts one for each message that
// lands while more are due, and counts them per QP; with write (the
// default) it waits for the client to leave. Not with -l, --check or
// --async.
//
// --async (client): the WRITEs go through rcq's asynchronous layer instead:
// 128 C++20 coroutines on one io_context (the tx depth), each awaiting its
// WRITEs one after the other (rcq::async_qp::async_write, use_awaitable,
// busy polling from the io_context); every WRITE is signaled, so compare
// with -Q 1. Not with -l or --check.
#include "perf_common.hpp"

#include <rcq/async.hpp>
#include <rcq/listener.hpp>
#include <rcq/resources.hpp>
#include <rcq/router.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <thread>

namespace {

using namespace rcq_perf;

constexpr const char* usage =
    "usage: rcq_bw [-d dev] [-x gid_index] [-s size] [-n iters] [-Q cq_mod] [-l post_list]\n"
    "              [-p port] [-t timeout_s] [--check] [--async]\n"
    "              [-q qps [--op write|send]] [server_host]\n"
    "  server when no host is given; defaults: -s 65536, -n 5000, -Q 100, -l 1, -p 18515,\n"
    "  -t 60 (per wait), the first device and its RoCE v2 GID. -n must be a multiple of -Q.\n"
    "  --check (give it to both sides) verifies every byte that arrived.\n"
    "  -q N (both sides): N QPs on one CQ, -n messages each; --op send for SENDs.\n";

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

// ---------------------------------------------------------------- -q N ----

using many_resources = rcq::resources<rcq::poll::busy, buffer>;
using many_peer = rcq::peer<rcq::handshake::tcp_link>;   // the server's
using many_client_peer = rcq::peer<rcq::handshake::tcp>; // the client's

/// Receives each server QP keeps posted: perftest's rx depth, at most -n.
std::uint32_t receives_per_qp(const options& o) {
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(o.iters, rq_depth));
}

rcq::resources_options many_options(const options& o) {
    rcq::resources_options r;
    r.device = o.device;
    r.gid_index = o.gid_index;
    r.max_qps = o.qps;
    r.caps.max_send_wr = o.is_client() ? static_cast<std::uint32_t>(sq_depth) : 1;
    r.caps.max_recv_wr = o.is_client() || o.op != "send" ? 1 : receives_per_qp(o);
    r.caps.max_inline_data = o.inline_size;
    // A SEND that finds no receive posted is retried for ever, as perftest's
    // are (rnr_retry 7): the server reposts as fast as it polls, and a
    // benchmark's receiver is known to be there. rcq's default (6) gives up
    // after a few ms of receiver-not-ready, which a loaded VM can exceed.
    r.rnr_retry = 7;
    // The CQ is the sum of what every QP can have outstanding (the default).
    if (!o.is_client()) r.remote_access = IBV_ACCESS_REMOTE_WRITE;
    return r;
}

template <class Peer>
void print_many_header(const options& o, const many_resources& res, const Peer& first) {
    std::printf("%s                    rcq %s BW Test, %u QPs on one CQ\n", rule,
                o.op == "send" ? "Send" : "RDMA_Write", o.qps);
    std::printf(" Device         : %-14s Connection type : RC\n",
                rcq::device_name(res.device()).c_str());
    std::printf(" Number of qps  : %-14u Max inline data : %u[B]\n", o.qps, o.inline_size);
    std::printf(" TX depth       : %-14zu CQ Moderation   : %zu\n", sq_depth, o.cq_mod);
    if (!o.is_client() && o.op == "send") std::printf(" RX depth       : %u\n", receives_per_qp(o));
    std::printf(" GID index      : %u\n%s", res.gid().index, rule);
    std::printf(" first QP: local QPN 0x%04x, remote QPN 0x%04x (the others follow)\n%s",
                first.local().qpn, first.remote().qpn, rule);
    std::fflush(stdout);
}

/// One client QP: its send queue (which owns the QP) and its request.
template <std::size_t Every, class Wr>
struct lane {
    rcq::send_queue<sq_depth, Every> sq;
    Wr wr;
    std::uint64_t posted = 0;
};

/// The client's loop: `make_wr(peer)` builds each QP's request.
template <std::size_t Every, class Wr, class MakeWr>
result send_many(std::vector<many_client_peer>& peers, const many_resources& res, const options& o,
                 MakeWr make_wr) {
    std::vector<lane<Every, Wr>> lanes;
    lanes.reserve(peers.size()); // the router holds pointers into it: no reallocation
    rcq::router<lane<Every, Wr>> routes(peers.size());
    for (many_client_peer& p : peers) {
        Wr wr = make_wr(p); // before the queue takes the QP
        lanes.push_back({rcq::send_queue<sq_depth, Every>(std::move(p.queue_pair())), wr});
        if (const int rc = routes.add(lanes.back().sq.queue_pair().qp_num(), lanes.back()); rc != 0)
            rcq::throw_error("router::add", {}, rc);
    }
    const std::uint64_t total = o.iters * peers.size();
    std::uint64_t retired = 0, completions = 0;
    std::array<ibv_wc, 16> batch;
    const char* what = o.op == "send" ? "SEND completions" : "RDMA WRITE completions";
    rcq::deadline until = rcq::deadline::after(o.timeout);
    unsigned empty = 0;

    const clock::time_point start = clock::now();
    while (retired < total) {
        for (auto& l : lanes) {
            while (l.posted < o.iters) {
                const int rc = l.sq.post(l.wr);
                if (rc == ENOSPC) break;
                if (rc != 0) rcq::throw_error("ibv_post_send", {}, rc);
                ++l.posted;
            }
        }
        const int n = routes.poll(
            res.completion_queue(), batch,
            [&](lane<Every, Wr>& l, const ibv_wc& wc) {
                rcq::check_completion(wc, what);
                l.sq.retire();
                retired += Every;
                ++completions;
            },
            [&](const ibv_wc& wc) {
                rcq::check_completion(wc, what);
                rcq::throw_invalid("a completion of QP " + std::to_string(wc.qp_num) +
                                   ", which is none of ours");
            });
        if (n < 0) rcq::throw_error(std::string("ibv_poll_cq while waiting for ") + what, {}, EIO);
        if (n > 0)
            until = rcq::deadline::after(o.timeout);
        else if (++empty % 1024 == 0 && until.expired())
            no_progress(what, o.timeout);
    }
    return {clock::now() - start, completions};
}

/// The server's side of -q with --op send: keeps receives posted on every
/// QP and counts the messages until all have arrived.
struct receiver {
    rcq::qp<rcq::state::rts>* qp = nullptr;
    std::uint64_t received = 0;
};

void serve_many(const options& o) {
    many_resources res(many_options(o));
    const bool sends = o.op == "send";
    const ibv_sge into =
        rcq::local(res.buffer_policy(), incoming_offset, static_cast<std::uint32_t>(o.size));
    auto post_receives = [&](rcq::qp<rcq::state::rts>& q, std::uint32_t count) {
        rcq::recv_wr wr(into, 0);
        ibv_recv_wr* bad = nullptr;
        for (std::uint32_t i = 0; i < count; ++i)
            if (const int rc = q.post_recv(wr, bad); rc != 0)
                rcq::throw_error("ibv_post_recv", {}, rc);
    };
    rcq::listener server(res, o.port);
    server.allow_memory_without_secret(); // a benchmark on a trusted network, as perftest
    std::vector<many_peer> peers;
    peers.reserve(o.qps);
    for (std::uint32_t i = 0; i < o.qps; ++i) {
        // Every SEND lands in the same bytes, as perftest's do: the
        // benchmark counts messages, it does not read them.
        peers.push_back(server.accept(o.timeout, [&](rcq::qp<rcq::state::rts>& q) {
            if (sends) post_receives(q, receives_per_qp(o));
        }));
        // The client connects its QPs one after the other, each waiting for
        // our go-ahead; it sends nothing before its last QP has it, and the
        // completions wait in the CQ until they are routed below.
        peers.back().ready();
        if (i == 0) print_many_header(o, res, peers.front());
    }
    server.stop();
    std::vector<receiver> receivers(peers.size());
    rcq::router<receiver> routes(peers.size());
    for (std::size_t i = 0; i < peers.size(); ++i) {
        receivers[i].qp = &peers[i].queue_pair();
        if (const int rc = routes.add(peers[i].qp_num(), receivers[i]); rc != 0)
            rcq::throw_error("router::add", {}, rc);
    }

    std::uint64_t received = 0;
    const std::uint64_t total = o.iters * peers.size();
    if (sends) {
        std::array<ibv_wc, 16> batch;
        rcq::deadline until = rcq::deadline::after(o.timeout);
        unsigned empty = 0;
        while (received < total) {
            const int n = routes.poll(
                res.completion_queue(), batch,
                [&](receiver& r, const ibv_wc& wc) {
                    rcq::check_completion(wc, "RECV completions");
                    ++received;
                    // Keep the QP's receives topped up while more can come.
                    if (++r.received + receives_per_qp(o) <= o.iters) post_receives(*r.qp, 1);
                },
                [](const ibv_wc& wc) {
                    rcq::check_completion(wc, "RECV completions");
                    rcq::throw_invalid("a completion of an unknown QP");
                });
            if (n < 0) rcq::throw_error("ibv_poll_cq while waiting for RECV completions", {}, EIO);
            if (n > 0)
                until = rcq::deadline::after(o.timeout);
            else if (++empty % 1024 == 0 && until.expired())
                no_progress("SENDs to arrive", o.timeout);
        }
    }
    // Until the client has finished and left (it bounds each of its waits by -t).
    for (auto& p : peers)
        while (!p.peer_gone())
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (sends) {
        for (const auto& r : receivers)
            if (r.received != o.iters)
                rcq::throw_invalid("a QP received " + std::to_string(r.received) + " SENDs, not " +
                                   std::to_string(o.iters));
        std::printf(" received: %llu SENDs, %llu on each of %u QPs\n",
                    static_cast<unsigned long long>(received),
                    static_cast<unsigned long long>(o.iters), o.qps);
    }
    std::printf(" (server: the client reports)\n%s", rule);
}

void run_many_client(const options& o) {
    many_resources res(many_options(o));
    const auto budget = std::chrono::duration_cast<std::chrono::milliseconds>(o.timeout);
    std::vector<many_client_peer> peers;
    peers.reserve(o.qps);
    for (std::uint32_t i = 0; i < o.qps; ++i) {
        // One handshake per QP, all to the server's one listening port.
        auto h = rcq::handshake::tcp::client(o.host, o.port, budget);
        h.allow_memory_without_secret();
        peers.push_back(res.connect(std::move(h)));
        peers.back().ready();
    }
    print_many_header(o, res, peers.front());
    const auto size = static_cast<std::uint32_t>(o.size);
    const ibv_sge sge = rcq::local(res.buffer_policy(), 0, size);
    result r;
    with_constant<signal_intervals>(o.cq_mod, [&](auto every) {
        constexpr std::size_t Every = decltype(every)::value;
        if (o.op == "send")
            r = send_many<Every, rcq::send_op>(
                peers, res, o, [&](many_client_peer&) { return rcq::send_op(sge, 0); });
        else
            r = send_many<Every, rcq::write_op>(peers, res, o, [&](many_client_peer& p) {
                return rcq::write_op(sge, rcq::remote_region::of(p.remote()).slice(0, size), 0);
            });
    });
    options all = o;
    all.iters = o.iters * o.qps;
    print_bandwidth(all, r.elapsed);
    std::printf(" completions polled: %llu (for %llu %s on %u QPs)\n%s",
                static_cast<unsigned long long>(r.completions),
                static_cast<unsigned long long>(all.iters), o.op == "send" ? "SENDs" : "WRITEs",
                o.qps, rule);
}

} // namespace

int main(int argc, char** argv) {
    return run("rcq_bw", usage, [&] {
        options defaults;
        defaults.size = 65536;
        defaults.iters = 5000;
        defaults.cq_mod = 100;
        defaults.op = "write";
        options o = parse(argc, argv, defaults, false, true);
        if (o.op == "async") throw usage_error("--op is write or send (and send needs -q)");
        if (o.qps != 0) {
            if (o.post_list > 1 || o.check || o.async)
                throw usage_error("-q takes neither -l, --check nor --async");
            if (o.iters % o.cq_mod != 0)
                throw usage_error("-n " + std::to_string(o.iters) + " is not a multiple of -Q " +
                                  std::to_string(o.cq_mod) +
                                  " (each QP's last message must be signaled)");
            if (o.is_client())
                run_many_client(o);
            else
                serve_many(o);
            return;
        }
        if (o.op != "write") throw usage_error("--op send needs -q");
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
