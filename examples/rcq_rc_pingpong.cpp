// rcq_rc_pingpong: ping-pongs SEND/RECV with rdma-core's ibv_rc_pingpong
// (either role), through the user-written handshake policy in
// rc_pingpong_handshake.hpp.
//
//   rcq_rc_pingpong [server_host] [-p port] [-d dev] [-g gid_index] [-s size] [-n iters] [--timeout S] [--narrate]
//
// With a host it is the client and sends first; without, the server. Each
// side sends its next message once its previous SEND completed and the
// peer's message arrived, as ibv_rc_pingpong does. ibv_rc_pingpong sends and
// receives in one buffer, so its server sends back the message it last
// received: the rcq client checks that each reply is its own message, and
// the rcq server does the same for the stock client (echoing what it got).
#include "rc_pingpong_handshake.hpp"

#include <rcq/rcq.hpp>

#include <charconv>
#include <chrono>
#include <optional>
#include <vector>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

constexpr std::size_t max_size = 1 << 20;
using connection = rcq::connection<example::rc_pingpong_handshake, rcq::buffer::owned<2 * max_size>>;

struct options {
    std::string server; // empty: be the server
    std::uint16_t port = 18515;
    std::string device;
    std::optional<int> gid_index;
    std::uint32_t size = 4096;
    int iters = 1000;
    std::chrono::seconds timeout{30};
    bool narrate = false;
};

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

long number(std::string_view text, long low, long high, std::string_view what) {
    long v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v < low || v > high)
        throw usage_error(std::string(what) + " '" + std::string(text) + "' is not in " +
                          std::to_string(low) + ".." + std::to_string(high));
    return v;
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) throw usage_error("option " + std::string(a) + " needs a value");
            return argv[++i];
        };
        if (a == "-p") o.port = static_cast<std::uint16_t>(number(value(), 1, 65535, "port"));
        else if (a == "-d") o.device = value();
        else if (a == "-g") o.gid_index = static_cast<int>(number(value(), 0, 65535, "GID index"));
        else if (a == "-s") o.size = static_cast<std::uint32_t>(number(value(), 1, max_size, "size"));
        else if (a == "-n") o.iters = static_cast<int>(number(value(), 1, 1 << 30, "iterations"));
        else if (a == "--timeout") o.timeout = std::chrono::seconds(number(value(), 1, 3600, "timeout"));
        else if (a == "--narrate") o.narrate = true;
        else if (!a.empty() && a[0] != '-' && o.server.empty()) o.server = a;
        else throw usage_error("unknown argument " + std::string(a));
    }
    return o;
}

void post_recv(connection& conn, std::uint32_t size) {
    if (int rc = conn.post_recv(max_size, size, 1); rc != 0) rcq::throw_error("ibv_post_recv", {}, rc);
}

int run(const options& o) {
    rcq::connection_options copts;
    copts.device = o.device;
    copts.gid_index = o.gid_index;
    copts.completion_timeout = o.timeout;
    copts.caps.max_recv_wr = 4;
    copts.narrate = o.narrate ? &std::cout : nullptr;
    const bool client = !o.server.empty();
    auto handshake = client ? example::rc_pingpong_handshake::client(o.server, o.port, o.timeout)
                            : example::rc_pingpong_handshake::server(o.port, o.timeout);
    if (!client) std::cout << "rcq_rc_pingpong: listening on port " << handshake.port() << '\n' << std::flush;
    connection conn(std::move(handshake), copts);
    const auto& me = conn.local();
    const auto& peer = conn.remote();
    std::cout << "  local address:  LID 0x" << rcq::detail::hex(me.lid) << ", QPN 0x" << rcq::detail::hex(me.qpn)
              << ", PSN 0x" << rcq::detail::hex(me.psn) << ", GID " << rcq::gid_entry{.gid = me.gid}.address() << '\n'
              << "  remote address: LID 0x" << rcq::detail::hex(peer.lid) << ", QPN 0x" << rcq::detail::hex(peer.qpn)
              << ", PSN 0x" << rcq::detail::hex(peer.psn) << ", GID " << rcq::gid_entry{.gid = peer.gid}.address()
              << '\n';

    const std::uint32_t size = o.size;
    auto out = conn.buffer().first(size);
    auto in = conn.buffer().subspan(max_size, size);
    std::vector<std::byte> first_seen;
    const auto start = std::chrono::steady_clock::now();
    if (!client) post_recv(conn, size);
    for (int round = 0; round < o.iters; ++round) {
        if (client) {
            post_recv(conn, size); // before the SEND: the reply can only follow it
            for (std::uint32_t i = 0; i < size; ++i) out[i] = std::byte(static_cast<std::uint8_t>(round * 31 + i));
            if (int rc = conn.post_send(0, size, 2); rc != 0) rcq::throw_error("ibv_post_send", {}, rc);
            // The reply's RECV may complete before our SEND does (its ACK can
            // follow the reply): wait_for() then sets it aside for wait_recv().
            conn.wait_for(2, "our message of round " + std::to_string(round));
            const std::uint32_t got = conn.wait_recv("the reply of round " + std::to_string(round)).byte_len;
            if (got != size || std::memcmp(in.data(), out.data(), size) != 0)
                rcq::throw_invalid("round " + std::to_string(round) + ": the reply is not our message sent back",
                                   "ibv_rc_pingpong's server replies from the buffer it received into");
        } else {
            const std::uint32_t got = conn.wait_recv("the message of round " + std::to_string(round)).byte_len;
            if (got != size)
                rcq::throw_invalid("round " + std::to_string(round) + ": received " + std::to_string(got) +
                                   " bytes, expected " + std::to_string(size), "give both sides the same -s");
            if (first_seen.empty()) first_seen.assign(in.begin(), in.end());
            else if (std::memcmp(first_seen.data(), in.data(), size) != 0)
                rcq::throw_invalid("round " + std::to_string(round) + ": the client's message changed",
                                   "ibv_rc_pingpong's client sends the message it got back, unchanged");
            // The next message can follow our echo at once: receive first.
            if (round + 1 < o.iters) post_recv(conn, size);
            std::memcpy(out.data(), in.data(), size); // echo, as the stock server does
            if (int rc = conn.post_send(0, size, 2); rc != 0) rcq::throw_error("ibv_post_send", {}, rc);
            // The client's next message may complete here before our echo's
            // SEND does: wait_for() sets it aside for the next wait_recv().
            conn.wait_for(2, "the echo of round " + std::to_string(round));
        }
    }
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    std::cout << 2LL * size * o.iters << " bytes in " << us / 1e6 << " seconds\n"
              << o.iters << " iters in " << us / 1e6 << " seconds = " << us / o.iters << " usec/iter"
              << (client ? " (every reply checked)" : " (every message checked)") << '\n';
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(parse(argc, argv));
    } catch (const usage_error& e) {
        std::cerr << "rcq_rc_pingpong: " << e.what()
                  << "\nusage: rcq_rc_pingpong [server_host] [-p port] [-d dev] [-g gid_index] [-s size] "
                     "[-n iters] [--timeout S] [--narrate]\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "rcq_rc_pingpong: error: " << e.what() << '\n';
        return 1;
    }
}
