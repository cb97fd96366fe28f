// hello_server: a complete rcq server. Waits for one client on a TCP port,
// receives its message and answers it. Each step is narrated on stderr.
//   hello_server [port] [device] [gid_index]
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
    const auto port = static_cast<std::uint16_t>(argc > 1 ? number(argv[1], 1, 65535, "port") : 18515);
    rcq::connection_options opts;
    if (argc > 2) opts.device = argv[2];                  // default: the first device
    if (argc > 3 && *argv[3]) // default: the RoCE v2 IPv4 GID
        opts.gid_index = static_cast<int>(number(argv[3], 0, 255, "GID index"));
    opts.narrate = &std::clog;
    rcq::connection<> conn(rcq::handshake::tcp::server(port), opts);  // 4096-byte buffer

    // Receives first, then the go-ahead: the client sends only after it.
    if (int rc = conn.post_recv(0, 1024, /*wr_id=*/1); rc != 0) rcq::throw_error("ibv_post_recv", {}, rc);
    conn.ready();
    const ibv_wc got = conn.wait_recv("the client's message");
    std::printf("received: %.*s\n", static_cast<int>(got.byte_len),
                reinterpret_cast<const char*>(conn.buffer().data()));

    constexpr std::string_view reply = "hello from the server";
    std::memcpy(conn.buffer().data() + 1024, reply.data(), reply.size());
    if (int rc = conn.post_send(1024, reply.size(), /*wr_id=*/2); rc != 0) rcq::throw_error("ibv_post_send", {}, rc);
    conn.wait_for(2, "the reply");
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "hello_server: %s\n", e.what());
    return 1;
}
