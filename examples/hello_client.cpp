// hello_client: a complete rcq client. Connects to hello_server, sends it a
// message and prints the answer. Each step is narrated on stderr.
//   hello_client <server_ip> [port] [device] [gid_index] [message]
#include <rcq/rcq.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>

// A number from the command line in [low, high], or a clear error.
static long number(const char* text, long low, long high, const char* what) {
    char* end = nullptr;
    const long value = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || value < low || value > high)
        throw std::invalid_argument(std::string(what) + " '" + text + "' is not a number in " +
                                    std::to_string(low) + ".." + std::to_string(high));
    return value;
}

int main(int argc, char** argv) try {
    if (argc < 2) { std::fprintf(stderr, "usage: hello_client <server_ip> [port] [device] [gid_index] [message]\n"); return 2; }
    const auto port = static_cast<std::uint16_t>(argc > 2 ? number(argv[2], 1, 65535, "port") : 18515);
    rcq::connection_options opts;
    if (argc > 3) opts.device = argv[3];
    if (argc > 4 && *argv[4]) opts.gid_index = static_cast<int>(number(argv[4], 0, 255, "GID index"));
    const std::string_view message = argc > 5 ? argv[5] : "hello from the client";
    if (message.size() > 2048) { std::fprintf(stderr, "hello_client: at most 2048 bytes\n"); return 2; }
    opts.narrate = &std::clog;
    rcq::connection<> conn(rcq::handshake::tcp::client(argv[1], port), opts);

    // Bytes 0-1023 of the 4096-byte buffer receive, bytes 2048-4095 send.
    if (int rc = conn.post_recv(0, 1024, /*wr_id=*/1); rc != 0) rcq::throw_error("ibv_post_recv", {}, rc);
    conn.ready();
    std::memcpy(conn.buffer().data() + 2048, message.data(), message.size());
    if (int rc = conn.post_send(2048, message.size(), /*wr_id=*/2); rc != 0) rcq::throw_error("ibv_post_send", {}, rc);
    conn.wait_for(2, "our message");              // the server's answer may come first: it waits aside
    const ibv_wc got = conn.wait_recv("the server's reply");
    std::printf("received: %.*s\n", static_cast<int>(got.byte_len),
                reinterpret_cast<const char*>(conn.buffer().data()));
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "hello_client: %s\n", e.what());
    return 1;
}
