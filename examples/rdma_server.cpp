// rdma_server: the server half of the RC SEND/RECV example.
//
// Opens a device, brings an RC QP to RTS with the client's endpoint from a TCP
// handshake, receives the client's message, checks every byte, and answers
// with a message of its own; a closing exchange settles that both sides
// succeeded before either exits. Narrates each step unless --quiet.
#include "example_options.hpp"

#include <rcq/connection.hpp>

#include <iostream>

int main(int argc, char** argv) {
    return example::run("rdma_server", false, [&] {
        const example::options opt = example::parse(argc, argv, false);
        const auto size = static_cast<std::uint32_t>(opt.size);
        constexpr std::string_view greeting = "Hello from the rcq server";
        constexpr std::string_view expected = "Hello from the rcq client";
        auto say = [&](const std::string& line) {
            if (!opt.quiet) std::cout << "[server] " << line << '\n' << std::flush;
        };

        if (opt.handshake == example::handshake_kind::tcp)
            say("waiting for a client on TCP port " + std::to_string(opt.port));
        return example::with_connection(opt, true, [&](auto& conn) {
            // The receive is posted before the go-ahead, so the client's SEND,
            // which only starts after it, always finds it.
            if (int rc = conn.post_recv(0, size, 1); rc != 0)
                rcq::throw_error("ibv_post_recv", {}, rc);
            say("posted a RECV of " + std::to_string(size) + " bytes");
            example::post_closing_recv(conn);
            conn.ready();

            const ibv_wc got = conn.wait_recv("the client's message (RECV)");
            const auto message = conn.buffer().first(got.byte_len);
            if (got.byte_len != size)
                rcq::throw_invalid("received " + std::to_string(got.byte_len) +
                                       " bytes, expected " + std::to_string(size),
                                   "start the client with the same -s as the server");
            if (auto bad = example::check_message(message, expected, 0x5a))
                rcq::throw_invalid("byte " + std::to_string(*bad) +
                                   " of the client's message is wrong");
            say("received " + std::to_string(got.byte_len) + " bytes: \"" +
                std::string(example::greeting_of(message, expected)) + "\" (every byte checked)");

            example::fill_message(conn.buffer().first(size), greeting, 0xa5);
            if (int rc = conn.post_send(0, size, 2); rc != 0)
                rcq::throw_error("ibv_post_send", {}, rc);
            say("posted a SEND of " + std::to_string(size) + " bytes");
            // The client's closing "ok" may complete before this SEND does
            // (the ACK can follow it): wait_for() sets it aside for later.
            conn.wait_for(2, "the reply to the client (SEND)");
            say("SEND completed: the client acknowledged the reply");
            example::closing_exchange(conn, say);
            say("done");
            return 0;
        });
    });
}
