// The RC server of the teaching program, written with rcq: open the first
// device, register a buffer, create a CQ and an RC QP, swap endpoints over
// TCP, bring the QP to RTS, receive one message and answer it, every wait
// bounded. bench/compile_time.sh times compiling this file against
// raw_server.cpp, the same program written with raw verbs: as it is (the
// two headers it uses), with the umbrella <rcq/rcq.hpp> forced in first, and
// each of these header-only and with RCQ_SEPARATE_COMPILATION.
#include <rcq/connection.hpp>
#include <rcq/handshake/tcp.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>

int main(int argc, char** argv) {
    try {
        const auto port = static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 18515);
        rcq::connection_options opts;
        opts.completion_timeout = std::chrono::seconds(5);
        rcq::connection<> conn(rcq::handshake::tcp::server(port, std::chrono::seconds(30)), opts);

        if (int rc = conn.post_recv(0, 64, 1); rc != 0) rcq::throw_error("ibv_post_recv", {}, rc);
        conn.ready();
        const ibv_wc got = conn.wait("the client's message");
        if (int rc = conn.post_send(0, got.byte_len, 2); rc != 0)
            rcq::throw_error("ibv_post_send", {}, rc);
        conn.wait("the reply");
        std::printf("answered %u bytes\n", got.byte_len);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rcq_server: %s\n", e.what());
        return 1;
    }
}
