// async_echo: an echo pair written with C++20 coroutines on Boost.Asio.
//
//   async_echo server [device] [port] [gid_index] [flags]
//   async_echo client <server_ip> [device] [port] [gid_index] [flags]
//
// with the flags of rdma_server and rdma_client (TCP handshake only), and
// -n COUNT messages (100). The connection is set up as in the other examples;
// then its QP and CQ are handed to rcq's asynchronous layer and one
// io_context runs everything: the client SENDs COUNT messages of -s bytes,
// the server echoes each back from a copy, and the client checks every byte
// of every echo (the server's -s must be at least the client's). --poll picks how the io_context learns of completions: busy
// (polled from the io_context), blocking (the completion channel's
// descriptor, so an idle side sleeps) or adaptive (polls, then the channel).
//
// A receive must be posted before the peer's SEND arrives (otherwise the
// peer is turned away, receiver not ready, and retries later), so each side
// posts its next receive together with its SEND and awaits both
// (async_round_trip.hpp: unlike Asio's parallel group, it allocates nothing
// once running).
#include "async_round_trip.hpp"
#include "example_options.hpp"

#include <rcq/async.hpp>
#include <rcq/rcq.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdint>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace asio = boost::asio;
using rts_qp = rcq::async_qp<rcq::state::rts>;

constexpr std::size_t in_at = 0;                    // where messages arrive
constexpr std::size_t out_at = example::max_message; // what leaves

// Echoes `count` messages: receives one, then sends it back from a copy while
// the receive for the next one is already posted.
asio::awaitable<void> echo(rts_qp& q, example::async_round_trip& both, ibv_sge in, ibv_sge out,
                           int count) {
    ibv_wc wc = co_await q.async_recv(in, asio::use_awaitable);
    for (int i = 0; i < count; ++i) {
        std::memcpy(reinterpret_cast<void*>(out.addr), reinterpret_cast<const void*>(in.addr),
                    wc.byte_len);
        ibv_sge reply = out;
        reply.length = wc.byte_len;
        if (i + 1 == count) {
            co_await q.async_send(reply, asio::use_awaitable);
            break;
        }
        wc = co_await both(in, reply); // the next message, and the echo sent
    }
}

// Sends `count` messages and checks each echo.
asio::awaitable<void> ask(example::async_round_trip& both, std::span<std::byte> memory,
                          const rcq::mr& region, std::uint32_t size, int count) {
    const ibv_sge out = rcq::local(region, out_at, size), in = rcq::local(region, in_at, size);
    for (int i = 0; i < count; ++i) {
        example::fill_message(memory.subspan(out_at, size), "echo me", static_cast<std::uint8_t>(i));
        const ibv_wc wc = co_await both(in, out);
        if (wc.byte_len != size)
            rcq::throw_invalid("echo " + std::to_string(i) + " has " + std::to_string(wc.byte_len) +
                               " bytes instead of " + std::to_string(size));
        if (auto bad = example::check_message(memory.subspan(in_at, size), "echo me",
                                              static_cast<std::uint8_t>(i)))
            rcq::throw_invalid("byte " + std::to_string(*bad) + " of echo " + std::to_string(i) +
                               " is wrong");
    }
}

template <class Poll>
int run_role(const example::options& opt, bool is_client, int count, auto say) {
    using connection = rcq::connection<example::buffer_policy, Poll>;
    rcq::connection_options c = example::connection_options(opt);
    connection conn(is_client ? rcq::handshake::tcp::client(opt.server, opt.port, opt.timeout)
                              : rcq::handshake::tcp::server(opt.port, opt.timeout),
                    c);
    // From here on the io_context drives the connection's CQ with its poll
    // policy, and the async QP owns the connection's QP.
    asio::io_context io(1);
    rcq::async_cq<Poll> cq(io.get_executor(), conn.poll_policy(), conn.completion_queue());
    rts_qp q(cq, std::move(conn.queue_pair()));
    example::async_round_trip both(q); // outlives the operations it starts
    const auto size = static_cast<std::uint32_t>(opt.size);
    const rcq::mr& region = conn.buffer_policy().region();

    std::exception_ptr failure;
    auto done = [&](std::exception_ptr e) { failure = e; };
    if (is_client) {
        // The server's first receive is posted before its go-ahead.
        conn.ready();
        asio::co_spawn(io, ask(both, conn.buffer(), region, size, count), done);
    } else {
        asio::co_spawn(io,
                       echo(q, both, rcq::local(region, in_at, size), rcq::local(region, out_at, size),
                            count),
                       done);
        // Runs the coroutine up to its first receive, posted before the go-ahead.
        while (cq.outstanding() == 0 && io.run_one() != 0) {
        }
        conn.ready();
    }
    say(std::string("running the io_context (") + Poll::describe() + ")");
    io.run_for(opt.timeout);
    if (failure) std::rethrow_exception(failure);
    if (!io.stopped() || cq.outstanding() != 0)
        rcq::throw_invalid("the echo did not finish within " + std::to_string(opt.timeout.count()) + " s");
    say("async echo: " + std::to_string(count) + " messages of " + std::to_string(size) +
        (is_client ? " bytes, every byte of every echo checked" : " bytes echoed"));
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const std::string_view role = argc > 1 ? argv[1] : "";
    const bool is_client = role == "client";
    return example::run("async_echo", is_client, [&] {
        if (role != "server" && role != "client")
            throw example::usage_error("the first argument must be `server` or `client`");
        // -n COUNT is ours; the rest are the examples' common flags.
        int count = 100;
        std::vector<char*> args{argv + 1, argv + argc};
        for (std::size_t i = 0; i + 1 < args.size(); ++i)
            if (std::string_view(args[i]) == "-n") {
                count = example::parse_number<int>(args[i + 1], 1, 1000000, "message count");
                args.erase(args.begin() + static_cast<std::ptrdiff_t>(i),
                           args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
                break;
            }
        example::options opt = example::parse(static_cast<int>(args.size()), args.data(), is_client);
        if (opt.handshake != example::handshake_kind::tcp || opt.buffer != example::buffer_kind::owned)
            throw example::usage_error("async_echo takes the TCP handshake and the owned buffer only");
        auto say = [&](const std::string& line) {
            if (!opt.quiet) std::cout << (is_client ? "[client] " : "[server] ") << line << '\n' << std::flush;
        };
        switch (opt.poll) {
        case example::poll_kind::blocking: return run_role<rcq::poll::blocking>(opt, is_client, count, say);
        case example::poll_kind::adaptive: return run_role<rcq::poll::adaptive<>>(opt, is_client, count, say);
        default: return run_role<rcq::poll::busy>(opt, is_client, count, say);
        }
    });
}
