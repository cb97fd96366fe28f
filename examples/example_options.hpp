// Command line of the example server and client.
//
//   rdma_server [device] [port] [gid_index] [flags]
//   rdma_client <server_ip> [device] [port] [gid_index] [flags]
//
// Flags, as rdma-core's examples and perftest spell them:
//   -d DEV  device            -p PORT  TCP port (18515)
//   -g IDX  GID index         -s SIZE  message size in bytes (4096)
//   -t SEC  handshake timeout --quiet  no step-by-step narration
#pragma once

#include <rcq/connection.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace example {

inline constexpr std::uint16_t default_port = 18515;
/// The largest message: the buffer holds one message to send and one to receive.
inline constexpr std::size_t max_message = 1 << 20;
using buffer_policy = rcq::buffer::owned<2 * max_message>;

struct options {
    std::string server;   // the client's peer; empty for the server
    std::string device;   // empty: the first device
    std::uint16_t port = default_port;
    std::optional<int> gid_index;
    std::size_t size = 4096;
    std::chrono::seconds timeout{60};
    bool quiet = false;
};

/// Thrown for a bad command line; main prints it with the usage and exits 2.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

template <class Int>
Int parse_number(std::string_view text, Int low, Int high, std::string_view what) {
    long long value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() ||
        std::cmp_less(value, low) || std::cmp_greater(value, high))
        throw usage_error(std::string(what) + " '" + std::string(text) + "' is not a number in " +
                          std::to_string(low) + ".." + std::to_string(high));
    return static_cast<Int>(value);
}

/// Parses argv. `is_client` makes the first positional argument the server's address.
inline options parse(int argc, char** argv, bool is_client) {
    options o;
    std::vector<std::string_view> positional;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) throw usage_error("option " + std::string(arg) + " needs a value");
            return argv[++i];
        };
        if (arg == "-h" || arg == "--help") throw usage_error("");
        else if (arg == "--quiet" || arg == "-q") o.quiet = true;
        else if (arg == "-d") o.device = value();
        else if (arg == "-p") o.port = parse_number<std::uint16_t>(value(), 1, 65535, "port");
        else if (arg == "-g" || arg == "-x") o.gid_index = parse_number<int>(value(), 0, 65535, "GID index");
        else if (arg == "-s")
            o.size = parse_number<std::size_t>(value(), 1, max_message, "message size");
        else if (arg == "-t")
            o.timeout = std::chrono::seconds(parse_number<int>(value(), 1, 3600, "timeout"));
        else if (arg.size() > 1 && arg[0] == '-') throw usage_error("unknown option " + std::string(arg));
        else positional.push_back(arg);
    }
    std::size_t next = 0;
    if (is_client) {
        if (positional.empty()) throw usage_error("the server's address is missing");
        o.server = positional[next++];
    }
    if (next < positional.size()) o.device = positional[next++];
    if (next < positional.size())
        o.port = parse_number<std::uint16_t>(positional[next++], 1, 65535, "port");
    if (next < positional.size())
        o.gid_index = parse_number<int>(positional[next++], 0, 65535, "GID index");
    if (next < positional.size())
        throw usage_error("unexpected argument '" + std::string(positional[next]) + "'");
    return o;
}

inline void print_usage(const char* program, bool is_client) {
    std::cerr << "usage: " << program << (is_client ? " <server_ip>" : "")
              << " [device] [port] [gid_index] [-d dev] [-p port] [-g gid_index]"
                 " [-s size] [-t timeout_s] [--quiet]\n"
                 "  port defaults to 18515, the GID index to the port's RoCE v2 IPv4 GID,\n"
                 "  size to 4096 bytes (at most "
              << max_message << "), the handshake timeout to 60 s.\n";
}

/// The message each side sends: a greeting, then a byte pattern that depends
/// on the sender, so that the receiver can check every byte.
inline void fill_message(std::span<std::byte> out, std::string_view greeting, std::uint8_t seed) {
    for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = i < greeting.size() ? std::byte(greeting[i])
                                     : std::byte(static_cast<std::uint8_t>(seed + i * 7));
}

/// The index of the first byte that differs from what fill_message wrote, or
/// nothing when all match.
inline std::optional<std::size_t> check_message(std::span<const std::byte> got,
                                                std::string_view greeting, std::uint8_t seed) {
    std::vector<std::byte> want(got.size());
    fill_message(want, greeting, seed);
    for (std::size_t i = 0; i < got.size(); ++i)
        if (got[i] != want[i]) return i;
    return std::nullopt;
}

/// The greeting as text, for the narration (at most the message's length).
inline std::string_view greeting_of(std::span<const std::byte> msg, std::string_view greeting) {
    return {reinterpret_cast<const char*>(msg.data()), std::min(msg.size(), greeting.size())};
}

inline rcq::connection_options connection_options(const options& o) {
    rcq::connection_options c;
    c.device = o.device;
    c.gid_index = o.gid_index;
    c.narrate = o.quiet ? nullptr : &std::cout;
    return c;
}

/// Runs `body` and turns errors into a message and an exit status:
/// 0 success, 1 failure, 2 bad command line.
template <class Body>
int run(const char* program, bool is_client, Body body) {
    try {
        return body();
    } catch (const usage_error& e) {
        const bool help = *e.what() == '\0'; // -h: usage only, and success
        if (!help) std::cerr << program << ": " << e.what() << '\n';
        print_usage(program, is_client);
        return help ? 0 : 2;
    } catch (const std::exception& e) {
        std::cerr << program << ": error: " << e.what() << '\n';
        return 1;
    }
}

} // namespace example
