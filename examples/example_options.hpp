// Command line of the example server and client.
//
//   rdma_server [device] [port] [gid_index] [flags]
//   rdma_client <server_ip> [device] [port] [gid_index] [flags]
//
// Flags, as rdma-core's examples and perftest spell them:
//   -d DEV  device            -p PORT  TCP port (18515)
//   -g IDX  GID index         -s SIZE  message size in bytes (4096)
//   -t SEC  handshake timeout --quiet  no step-by-step narration
//   -n N    messages (the echo examples)
//   --clients=N   echo server: stop once N clients have finished
//   --mtu=BYTES   largest path MTU (256..4096; the peer's may lower it)
//   --tclass=N    traffic class of every packet (DSCP << 2, e.g. 104 for DSCP 26)
//   --sl=N        service level 0-15 (the VLAN priority on RoCE)
// and the policies, chosen at run time among combinations compiled in:
//   --poll=busy|blocking|adaptive          (busy)
//   --buffer=owned|huge|borrowed|external  (owned)
//   --handshake=tcp|file:DIR|env|rdma_cm   (tcp)
// With file: or env, the client takes no server address; with rdma_cm, -p is
// the RDMA CM port and the server address is its RoCE interface's IP.
#pragma once

#include <rcq/rcq.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
/// After the two messages: the closing exchange's two small messages.
inline constexpr std::size_t closing_at = 2 * max_message;
inline constexpr std::size_t buffer_bytes = closing_at + 4096;
using buffer_policy = rcq::buffer::owned<buffer_bytes>;

/// The work request ids of the closing exchange, apart from the examples' own.
inline constexpr std::uint64_t closing_recv_id = 0xc105e;
inline constexpr std::uint64_t closing_send_id = 0xc105f;

enum class poll_kind { busy, blocking, adaptive };
enum class buffer_kind { owned, huge, borrowed, external };
enum class handshake_kind { tcp, file, env, rdma_cm };

struct options {
    poll_kind poll = poll_kind::busy;
    buffer_kind buffer = buffer_kind::owned;
    handshake_kind handshake = handshake_kind::tcp;
    std::string folder;   // with --handshake=file:DIR
    std::string server;   // the client's peer; empty for the server
    std::string device;   // empty: the first device
    std::uint16_t port = default_port;
    std::optional<int> gid_index;
    std::size_t size = 4096;
    std::chrono::seconds timeout{60};
    std::size_t iterations = 0; // -n; 0: the example's own default
    std::size_t clients = 0;    // --clients; 0: until stopped
    bool quiet = false;
    std::optional<int> mtu;
    std::uint8_t traffic_class = 0;
    std::uint8_t service_level = 0;
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

inline poll_kind choose_poll(std::string_view v) {
    if (v == "busy") return poll_kind::busy;
    if (v == "blocking") return poll_kind::blocking;
    if (v == "adaptive") return poll_kind::adaptive;
    throw usage_error("--poll=" + std::string(v) + ": choose busy, blocking or adaptive");
}

inline buffer_kind choose_buffer(std::string_view v) {
    if (v == "owned") return buffer_kind::owned;
    if (v == "huge") return buffer_kind::huge;
    if (v == "borrowed") return buffer_kind::borrowed;
    if (v == "external") return buffer_kind::external;
    throw usage_error("--buffer=" + std::string(v) + ": choose owned, huge, borrowed or external");
}

inline void choose_handshake(std::string_view v, options& o) {
    if (v == "tcp") {
        o.handshake = handshake_kind::tcp;
    } else if (v == "env") {
        o.handshake = handshake_kind::env;
    } else if (v == "rdma_cm") {
        o.handshake = handshake_kind::rdma_cm;
    } else if (v.starts_with("file:") && v.size() > 5) {
        o.handshake = handshake_kind::file;
        o.folder = v.substr(5);
    } else {
        throw usage_error("--handshake=" + std::string(v) + ": choose tcp, file:DIR, env or rdma_cm");
    }
}

/// Parses argv. `is_client` makes the first positional argument the server's
/// address (with the TCP handshake).
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
        else if (arg == "-n")
            o.iterations = parse_number<std::size_t>(value(), 1, 100'000'000, "message count");
        else if (arg.starts_with("--clients="))
            o.clients = parse_number<std::size_t>(arg.substr(10), 1, 1'000'000, "client count");
        else if (arg == "-t")
            o.timeout = std::chrono::seconds(parse_number<int>(value(), 1, 3600, "timeout"));
        else if (arg.starts_with("--mtu=")) {
            o.mtu = parse_number<int>(arg.substr(6), 256, 4096, "MTU");
            if (!rcq::mtu_from_bytes(static_cast<unsigned>(*o.mtu)))
                throw usage_error("--mtu=" + std::to_string(*o.mtu) + ": choose 256, 512, 1024, 2048 or 4096");
        } else if (arg.starts_with("--tclass="))
            o.traffic_class = parse_number<std::uint8_t>(arg.substr(9), 0, 255, "traffic class");
        else if (arg.starts_with("--sl="))
            o.service_level = parse_number<std::uint8_t>(arg.substr(5), 0, 15, "service level");
        else if (arg.starts_with("--poll=")) o.poll = choose_poll(arg.substr(7));
        else if (arg.starts_with("--buffer=")) o.buffer = choose_buffer(arg.substr(9));
        else if (arg.starts_with("--handshake=")) choose_handshake(arg.substr(12), o);
        else if (arg.size() > 1 && arg[0] == '-') throw usage_error("unknown option " + std::string(arg));
        else positional.push_back(arg);
    }
    std::size_t next = 0;
    if (is_client && (o.handshake == handshake_kind::tcp || o.handshake == handshake_kind::rdma_cm)) {
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
                 " [-s size] [-n messages] [-t timeout_s] [--quiet]\n"
                 "    [--mtu=256..4096] [--tclass=0..255] [--sl=0..15]\n"
                 "    [--poll=busy|blocking|adaptive] [--buffer=owned|huge|borrowed|external]\n"
                 "    [--handshake=tcp|file:DIR|env|rdma_cm]   (file: and env: no server address)\n"
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

/// The number after `prefix` in a message from the peer, e.g. "done 4096".
/// Nothing a peer sends is trusted, least of all a length we index our own
/// memory with: anything but a plain decimal number of at most `limit` is
/// refused with rcq::error.
inline std::size_t length_from_peer(std::string_view said, std::string_view prefix,
                                    std::size_t limit) {
    if (said.substr(0, prefix.size()) != prefix)
        rcq::throw_invalid("the peer said \"" + std::string(said.substr(0, 40)) + "\", expected \"" +
                           std::string(prefix) + "<length>\"", {}, EPROTO);
    const std::string_view digits = said.substr(prefix.size());
    std::size_t length = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
    if (ec != std::errc{} || end != digits.data() + digits.size() || digits.empty())
        rcq::throw_invalid("the peer's length \"" + std::string(digits.substr(0, 40)) +
                               "\" is not a decimal number", {}, EPROTO);
    if (length > limit)
        rcq::throw_invalid("the peer's length " + std::to_string(length) + " is more than the " +
                               std::to_string(limit) + " bytes it may have written",
                           "a peer cannot make us read past our own buffer", ERANGE);
    return length;
}

inline rcq::connection_options connection_options(const options& o) {
    rcq::connection_options c;
    c.device = o.device;
    c.gid_index = o.gid_index;
    c.narrate = o.quiet ? nullptr : &std::cout;
    c.max_mtu = o.mtu;
    c.traffic_class = o.traffic_class;
    c.service_level = o.service_level;
    return c;
}

/// The closing exchange: how two programs agree on the outcome.
///
/// RC tells a sender that its message arrived (the ACK), but a receiver
/// that has what it wanted and exits at once can leave the sender without
/// that ACK: a lost ACK is resent only while the receiver's QP exists, and
/// the sender then fails with "retry counter exceeded" although its message
/// arrived. So neither side exits after its own part: each SENDs the word
/// "ok" and waits for the peer's "ok" and for its own SEND to complete.
/// A side that fails sends nothing and exits with its error; the peer then
/// fails too (its wait ends in an error or a timeout), so both report
/// failure.
///
/// The last SEND has the same weakness, and is settled by one rule: once
/// the peer's "ok" is here, an error completion of our own "ok" means the
/// peer has gone, and it goes only after it has received our "ok" (a peer
/// still waiting for it would acknowledge the resent packets). Both sides
/// then report success.
///
/// Each side must post the receive for the peer's "ok" (post_closing_recv)
/// before the peer can send it, like every receive, and after the receives
/// for the peer's earlier messages (an RC QP fills its receives in the
/// order they were posted). `at` is 128 free bytes of the buffer.
template <class Connection>
void post_closing_recv(Connection& conn, std::size_t at = closing_at) {
    if (int rc = conn.post_recv(at, 64, closing_recv_id); rc != 0)
        rcq::throw_error("ibv_post_recv(the peer's closing word)", {}, rc);
}

template <class Connection, class Say>
void closing_exchange(Connection& conn, Say say, std::size_t at = closing_at) {
    constexpr std::string_view ok = "ok";
    std::memcpy(conn.buffer().data() + at + 64, ok.data(), ok.size());
    if (int rc = conn.post_send(at + 64, static_cast<std::uint32_t>(ok.size()), closing_send_id);
        rc != 0)
        rcq::throw_error("ibv_post_send(our closing word)", {}, rc);
    bool heard = false, sent = false;
    while (!heard || !sent) {
        ibv_wc wc{};
        try {
            wc = conn.wait(heard ? "the completion of our closing \"ok\""
                                 : "the peer's closing \"ok\" (its outcome)");
        } catch (const rcq::error& e) {
            // EIO: our "ok" ended in an error completion; ECONNRESET: the
            // handshake's liveness signal saw the peer go first.
            if (heard && (e.code().value() == EIO || e.code().value() == ECONNRESET)) {
                say("the peer left before acknowledging our \"ok\"; it had received it");
                return;
            }
            throw;
        }
        if (wc.wr_id == closing_send_id) {
            sent = true;
        } else if (wc.wr_id == closing_recv_id) {
            const std::string_view word(reinterpret_cast<const char*>(conn.buffer().data() + at),
                                        wc.byte_len);
            if (word != ok)
                rcq::throw_invalid("the peer closed with \"" + std::string(word.substr(0, 16)) +
                                   "\" instead of \"ok\"");
            heard = true;
        }
    }
    say("closing exchange: both sides report success");
}

template <class T>
struct tag {
    using type = T;
};

/// Memory for each buffer policy, kept alive around the connection.
template <class Buffer>
struct buffer_memory {
    explicit buffer_memory(const options& o) : huge(o.buffer == buffer_kind::huge) {}
    typename Buffer::config config() const { return {.huge_pages = huge}; }
    bool huge;
};
template <>
struct buffer_memory<rcq::buffer::borrowed> {
    explicit buffer_memory(const options&) {}
    rcq::buffer::borrowed::config config() { return {.memory = memory}; }
    std::vector<std::byte> memory = std::vector<std::byte>(buffer_bytes);
};
template <>
struct buffer_memory<rcq::buffer::external> {
    // The caller's own device, PD and MR; the connection runs on them.
    explicit buffer_memory(const options& o)
        : ctx(rcq::context::open(o.device)), pd(ctx), memory(buffer_bytes), region(pd, memory) {}
    rcq::buffer::external::config config() const { return {.mr = region.get()}; }
    rcq::context ctx;
    rcq::pd pd;
    std::vector<std::byte> memory;
    rcq::mr region;
};

inline rcq::handshake::tcp make_handshake(tag<rcq::handshake::tcp>, const options& o, bool server) {
    return server ? rcq::handshake::tcp::server(o.port, o.timeout)
                  : rcq::handshake::tcp::client(o.server, o.port, o.timeout);
}
inline rcq::handshake::file make_handshake(tag<rcq::handshake::file>, const options& o, bool server) {
    return rcq::handshake::file(o.folder, "rcq-example-" + std::to_string(o.port),
                                server ? "server" : "client", server ? "client" : "server", o.timeout);
}
inline rcq::handshake::env make_handshake(tag<rcq::handshake::env>, const options& o, bool) {
    return rcq::handshake::env(o.timeout);
}
inline rcq::handshake::rdma_cm make_handshake(tag<rcq::handshake::rdma_cm>, const options& o,
                                              bool server) {
    return server ? rcq::handshake::rdma_cm::server(o.port, o.timeout)
                  : rcq::handshake::rdma_cm::client(o.server, o.port, o.timeout);
}

/// Builds the connection with the policies the command line chose and runs
/// `body(connection&)`. Every combination is compiled in; the choice among
/// them is made here, once, at run time.
template <class Body>
int with_connection(const options& o, bool server, Body body) {
    auto build = [&](auto poll, auto buffer, auto handshake) {
        using P = typename decltype(poll)::type;
        using B = typename decltype(buffer)::type;
        using H = typename decltype(handshake)::type;
        buffer_memory<B> memory(o);
        rcq::connection<P, B, H> conn(make_handshake(handshake, o, server), connection_options(o),
                                      memory.config());
        return body(conn);
    };
    auto with_handshake = [&](auto poll, auto buffer) {
        switch (o.handshake) {
        case handshake_kind::tcp: return build(poll, buffer, tag<rcq::handshake::tcp>{});
        case handshake_kind::file: return build(poll, buffer, tag<rcq::handshake::file>{});
        case handshake_kind::rdma_cm: return build(poll, buffer, tag<rcq::handshake::rdma_cm>{});
        default: return build(poll, buffer, tag<rcq::handshake::env>{});
        }
    };
    auto with_buffer = [&](auto poll) {
        switch (o.buffer) {
        case buffer_kind::owned:
        case buffer_kind::huge: return with_handshake(poll, tag<buffer_policy>{});
        case buffer_kind::borrowed: return with_handshake(poll, tag<rcq::buffer::borrowed>{});
        default: return with_handshake(poll, tag<rcq::buffer::external>{});
        }
    };
    switch (o.poll) {
    case poll_kind::busy: return with_buffer(tag<rcq::poll::busy>{});
    case poll_kind::blocking: return with_buffer(tag<rcq::poll::blocking>{});
    default: return with_buffer(tag<rcq::poll::adaptive<>>{});
    }
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
