// rcq_lat: ping-pong latency of one RC connection built with rcq, measured
// and reported the way perftest's ib_send_lat / ib_write_lat do.
//
//   server:  rcq_lat [--op send|write] [-d dev] [-x gid_index] [-s size] [-n iters]
//                    [-Q cq_mod] [-I inline] [-p port] [-t timeout_s] [--cm]
//   client:  rcq_lat [same options] <server host>
//
// --op send : each side sends a SEND and waits for the peer's, into receives
//             posted ahead of time (ib_send_lat).
// --op write: each side RDMA WRITEs into the peer's buffer and spins on the
//             last byte of its own until the peer's write lands (ib_write_lat).
// The client starts; every round trip is timed between consecutive posts and
// half of it is reported (t_min, t_max, t_typical = median, t_avg, stdev,
// 99% and 99.9%), both sides printing the table. As in perftest, the
// requests are built once and the times come from the CPU's cycle counter.
// Sends go through rcq::send_queue, signaled every -Q (default 1: every
// send); a signaled send is waited for before going on, as perftest does.
// Every wait is bounded by -t seconds (default 60), the handshake's connect
// included; the clock restarts at each message, so a long run is not cut
// short. --cm connects through the RDMA CM (rcq::handshake::rdma_cm, -p is
// then the RDMA CM port) instead of TCP. The client prints how long setting
// up the connection took (its constructor: device, memory, CQ, QP, handshake).
#include "async_round_trip.hpp"
#include "perf_common.hpp"

#include <rcq/async.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <thread>

namespace {

using namespace rcq_perf;

constexpr const char* usage =
    "usage: rcq_lat [--op send|write|async] [-d dev] [-x gid_index] [-s size] [-n iters] [-Q cq_mod]\n"
    "               [-I inline_size] [-p port] [-t timeout_s] [--cm] [server_host]\n"
    "  server when no host is given; defaults: --op send, -s 2, -n 1000, -Q 1, -I 0,\n"
    "  -p 18515, -t 60, the first device and its RoCE v2 GID.\n";

/// One side of the ping-pong. `Every` is the signaling interval (-Q). The
/// work requests are built once and posted again and again, as perftest does.
template <class Connection, std::size_t Every>
class ping_pong {
public:
    ping_pong(Connection& conn, const options& o)
        : conn_(conn), o_(o), write_(o.op == "write"), sq_(std::move(conn.queue_pair())),
          size_(static_cast<std::uint32_t>(o.size)),
          out_(rcq::local(conn.buffer_policy(), 0, size_)),
          in_(rcq::local(conn.buffer_policy(), incoming_offset, size_)),
          send_(out_, 0),
          // Without --op write the WRITE is never posted; its slice only has
          // to be long enough for the request to be built.
          write_wr_(out_, write_ ? rcq::remote_region::of(conn.remote()).slice(incoming_offset, size_)
                                 : rcq::remote_slice{0, 0, size_},
                    0),
          recv_(in_, 0),
          last_in_(reinterpret_cast<volatile std::uint8_t*>(conn.buffer().data() + incoming_offset +
                                                           size_ - 1)),
          last_out_(conn.buffer().data() + size_ - 1) {
        if (o.size <= o.inline_size) {
            send_.inlined();
            write_wr_.inlined();
        }
    }

    // The send queue owns the connection's QP while the ping-pong runs.
    ~ping_pong() { conn_.queue_pair() = std::move(sq_).release(); }
    ping_pong(const ping_pong&) = delete;
    ping_pong& operator=(const ping_pong&) = delete;

    /// Runs the ping-pong; returns the tick of each post and the length of a tick.
    std::pair<std::vector<std::uint64_t>, double> run() {
        if (!write_) // receives go first; the barrier then tells the peer they are there
            while (recvs_posted_ < std::min<std::uint64_t>(o_.iters, rq_depth)) post_recv();
        conn_.ready();

        std::vector<std::uint64_t> posted(o_.iters);
        const stopwatch watch;
        std::uint64_t sent = 0, received = 0;
        // The client speaks first; after that each side answers what it got.
        while (sent < o_.iters || received < o_.iters) {
            if (received < o_.iters && !(sent == 0 && o_.is_client())) {
                ++received;
                write_ ? wait_for_write(received) : wait_for_recv();
            }
            if (sent < o_.iters) {
                posted[sent] = stopwatch::ticks();
                ++sent;
                if (write_) {
                    *last_out_ = std::byte{tag(sent)};
                    post(write_wr_);
                } else {
                    post(send_);
                }
            }
        }
        return {std::move(posted), watch.us_per_tick()};
    }

private:
    void post_recv() {
        if (int rc = sq_.post_recv(recv_); rc != 0)
            rcq::throw_error("ibv_post_recv", {}, rc);
        ++recvs_posted_;
    }

    // Takes completions until `done()`: receives are counted, send
    // completions retire their batch in the send queue.
    template <class Done>
    void take_completions(const char* what, Done done) {
        poll_until(conn_.completion_queue(), o_.timeout, what, done, [&](const ibv_wc& wc) {
            if (wc.opcode & IBV_WC_RECV) {
                ++recvs_arrived_;
            } else {
                sq_.retire();
                ++sends_completed_;
            }
        });
    }

    // Posts through the send queue; a signaled request is waited for, as
    // perftest waits for each signaled completion before going on.
    template <class W>
    void post(W& wr) {
        for (;;) {
            const int rc = sq_.post(wr);
            if (rc == 0) break;
            if (rc != ENOSPC) rcq::throw_error("ibv_post_send", {}, rc);
            const std::uint64_t before = sends_completed_;
            take_completions("a send completion", [&] { return sends_completed_ != before; });
        }
        if (wr.send_flags & IBV_SEND_SIGNALED) {
            const std::uint64_t before = sends_completed_;
            take_completions("the send's completion", [&] { return sends_completed_ != before; });
        }
    }

    void wait_for_recv() {
        take_completions("the peer's SEND", [&] { return recvs_arrived_ != recvs_used_; });
        ++recvs_used_;
        if (recvs_posted_ < o_.iters) post_recv();
    }

    // The peer's n-th write carries tag(n) in its last byte.
    void wait_for_write(std::uint64_t n) {
        const std::uint8_t want = tag(n);
        const rcq::deadline until = rcq::deadline::after(o_.timeout);
        for (unsigned spins = 0; *last_in_ != want;)
            if (++spins % 1024 == 0 && until.expired())
                no_progress("the peer's RDMA WRITE " + std::to_string(n), o_.timeout);
    }

    static std::uint8_t tag(std::uint64_t n) noexcept { return static_cast<std::uint8_t>(n % 255 + 1); }

    Connection& conn_;
    const options& o_;
    bool write_;
    rcq::send_queue<sq_depth, Every> sq_;
    std::uint32_t size_;
    ibv_sge out_, in_; // what we send, where the peer's messages land
    rcq::send_op send_;
    rcq::write_op write_wr_;
    rcq::recv_wr recv_;
    const volatile std::uint8_t* last_in_;
    std::byte* last_out_;
    std::uint64_t recvs_posted_ = 0, recvs_arrived_ = 0, recvs_used_ = 0;
    std::uint64_t sends_completed_ = 0;
};

/// The SEND ping-pong with coroutines: the client sends first; each side
/// keeps one receive posted for the peer's next message, posting it with
/// its own SEND and awaiting both (examples/async_round_trip.hpp, which
/// allocates nothing per round, unlike Asio's parallel group).
template <class Connection>
std::pair<std::vector<std::uint64_t>, double> async_ping_pong(Connection& conn, const options& o) {
    namespace asio = boost::asio;
    using poll_type = typename Connection::poll_type;
    asio::io_context io(1);
    rcq::async_cq<poll_type> cq(io.get_executor(), conn.poll_policy(), conn.completion_queue());
    rcq::async_qp<rcq::state::rts> q(cq, std::move(conn.queue_pair()));
    example::async_round_trip both(q); // outlives the operations it starts
    const auto size = static_cast<std::uint32_t>(o.size);
    const ibv_sge out = rcq::local(conn.buffer_policy(), 0, size);
    const ibv_sge in = rcq::local(conn.buffer_policy(), incoming_offset, size);
    std::vector<std::uint64_t> posted(o.iters);
    const stopwatch watch;

    auto side = [&]() -> asio::awaitable<void> {
        if (!o.is_client()) (void)co_await q.async_recv(in, asio::use_awaitable);
        for (std::uint64_t i = 0; i < o.iters; ++i) {
            posted[i] = stopwatch::ticks();
            const bool last_reply = !o.is_client() && i + 1 == o.iters;
            if (last_reply) {
                (void)co_await q.async_send(out, asio::use_awaitable);
                break;
            }
            (void)co_await both(in, out);
        }
    };
    std::exception_ptr failure;
    asio::co_spawn(io, side(), [&](std::exception_ptr e) { failure = e; });
    // The server's first receive goes before the go-ahead.
    if (!o.is_client())
        while (cq.outstanding() == 0 && io.run_one() != 0) {
        }
    conn.ready();
    io.run_for(o.timeout * 2);
    if (failure) std::rethrow_exception(failure);
    if (cq.outstanding() != 0) no_progress("the asynchronous ping-pong", o.timeout * 2);
    conn.queue_pair() = rcq::qp<rcq::state::rts>::adopt_unchecked(std::move(q).release());
    return {std::move(posted), watch.us_per_tick()};
}

template <class Connection, class MakeHandshake>
void measure(const options& o, MakeHandshake make_handshake) {
    using Handshake = decltype(make_handshake(o));
    const bool write = o.op == "write";
    // The handshake is made inside the timed span: librdmacm opens the
    // devices when its first event channel is created.
    const auto start = std::chrono::steady_clock::now();
    Connection conn(make_handshake(o), connection_options(o, write));
    const double setup_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    print_header(write                ? "rcq RDMA_Write Latency Test"
                 : o.op == "async" ? "rcq Send Latency Test (coroutines)"
                                   : "rcq Send Latency Test",
                 o, conn, false);
    if (o.is_client())
        std::printf(" Connection set-up: %.2f ms (%s handshake)\n", setup_ms, o.cm ? "rdma_cm" : "tcp");

    std::pair<std::vector<std::uint64_t>, double> posted;
    if (o.op == "async")
        posted = async_ping_pong(conn, o);
    else
        with_constant<signal_intervals>(o.cq_mod, [&](auto every) {
            ping_pong<Connection, decltype(every)::value> side(conn, o);
            posted = side.run();
        });
    // Neither side leaves before the other is done: its last message may
    // still be waiting for the ACK the peer's QP sends. Over the RDMA CM the
    // server, which finishes last (its last message is the last one),
    // disconnects and the client waits for it. Over TCP the server stays
    // until the client, which leaves only once it has that message, has gone
    // (the handshake's liveness signal), at most -t; a final go-ahead would do
    // too, but the handshake's budget runs from the first exchange and would
    // bound the whole run.
    if constexpr (std::same_as<Handshake, rcq::handshake::rdma_cm>) {
        if (o.is_client())
            conn.handshake().wait_for_disconnect(o.timeout);
        else
            conn.handshake().disconnect();
    } else if (!o.is_client()) {
        const rcq::deadline until = rcq::deadline::after(o.timeout);
        while (!conn.peer_gone()) {
            if (until.expired()) no_progress("the client to finish", o.timeout);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    print_latency(o, posted.first, posted.second);
}

} // namespace

int main(int argc, char** argv) {
    return run("rcq_lat", usage, [&] {
        const options o = parse(argc, argv, options{}, true, false);
        if (o.cm)
            measure<cm_connection>(o, cm_handshake);
        else
            measure<connection>(o, handshake);
    });
}
