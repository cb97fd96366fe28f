// rdma_client: the client half of the RC SEND/RECV example.
//
// Connects to rdma_server over TCP to swap endpoints, brings an RC QP to RTS,
// sends a message after the server's go-ahead, then receives and checks the
// server's answer; a closing exchange settles that both sides succeeded
// before either exits. Narrates each step unless --quiet.
#include "example_options.hpp"

#include <rcq/connection.hpp>

#include <iostream>

int main(int argc, char** argv) {
    return example::run("rdma_client", true, [&] {
        const example::options opt = example::parse(argc, argv, true);
        const auto size = static_cast<std::uint32_t>(opt.size);
        constexpr std::string_view greeting = "Hello from the rcq client";
        constexpr std::string_view expected = "Hello from the rcq server";
        auto say = [&](const std::string& line) {
            if (!opt.quiet) std::cout << "[client] " << line << '\n' << std::flush;
        };

        if (opt.handshake == example::handshake_kind::tcp)
            say("connecting to " + opt.server + ":" + std::to_string(opt.port));
        return example::with_connection(opt, false, [&](auto& conn) {
            // The reply lands in the second half of the buffer; its receive is
            // posted before the go-ahead, like the server's.
            const std::size_t reply_at = example::max_message;
            if (int rc = conn.post_recv(reply_at, size, 1); rc != 0)
                rcq::throw_error("ibv_post_recv", {}, rc);
            say("posted a RECV of " + std::to_string(size) + " bytes for the reply");
            example::post_closing_recv(conn);
            conn.ready();

            example::fill_message(conn.buffer().first(size), greeting, 0x5a);
            if (int rc = conn.post_send(0, size, 2); rc != 0)
                rcq::throw_error("ibv_post_send", {}, rc);
            say("posted a SEND of " + std::to_string(size) + " bytes");

            // The reply may complete before our SEND does (the server's ACK
            // can follow its reply): wait_for() sets the reply aside.
            conn.wait_for(2, "the SEND to the server");
            say("SEND completed: the server acknowledged it");
            const ibv_wc got = conn.wait_recv("the server's reply (RECV)");
            const auto reply = conn.buffer().subspan(reply_at, got.byte_len);
            if (got.byte_len != size)
                rcq::throw_invalid("received " + std::to_string(got.byte_len) +
                                   " bytes, expected " + std::to_string(size));
            if (auto bad = example::check_message(reply, expected, 0xa5))
                rcq::throw_invalid("byte " + std::to_string(*bad) +
                                   " of the server's reply is wrong");
            say("received " + std::to_string(got.byte_len) + " bytes: \"" +
                std::string(example::greeting_of(reply, expected)) + "\" (every byte checked)");
            example::closing_exchange(conn, say);
            say("done");
            return 0;
        });
    });
}
