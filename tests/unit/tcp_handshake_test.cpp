// rcq::handshake::tcp over loopback: both roles, and every way a peer can
// misbehave (absent, silent, closing early, speaking another protocol) ending
// in a clear rcq::error within the time budget rather than a hang.
#include "support.hpp"

#include <rcq/handshake/tcp.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <future>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using unit_test::endpoint_with;
using unit_test::error_of;

using namespace std::chrono_literals;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using rcq::detail::unique_fd;
using rcq::handshake::tcp;
using clock_type = std::chrono::steady_clock;

// ---- a raw peer that does exactly what a test tells it -----------------------

unique_fd raw_socket() {
    unique_fd fd(::socket(AF_INET, SOCK_STREAM, 0));
    timeval tv{10, 0}; // a broken test must not hang the suite
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

unique_fd raw_connect(std::uint16_t port) {
    auto fd = raw_socket();
    auto addr = loopback(port);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw std::runtime_error("raw_connect failed");
    return fd;
}

// A socket bound to a free loopback port but not listening: connecting to it
// is refused, and no other test can take the port while it is held.
unique_fd reserve_port(std::uint16_t& port) {
    auto fd = raw_socket();
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto addr = loopback(0);
    ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    return fd;
}

unique_fd raw_listen(std::uint16_t& port) {
    auto fd = reserve_port(port);
    ::listen(fd.get(), 1);
    return fd;
}

unique_fd raw_accept(const unique_fd& listener) {
    return unique_fd(::accept(listener.get(), nullptr, nullptr));
}

void raw_send(const unique_fd& fd, const std::vector<std::byte>& data) {
    ::send(fd.get(), data.data(), data.size(), MSG_NOSIGNAL);
}

std::vector<std::byte> raw_read(const unique_fd& fd, std::size_t n) {
    std::vector<std::byte> data(n);
    std::size_t got = 0;
    while (got < n) {
        auto r = ::recv(fd.get(), data.data() + got, n - got, 0);
        if (r <= 0) throw std::runtime_error("raw_read failed");
        got += static_cast<std::size_t>(r);
    }
    return data;
}

// Keeps the connection open until the other side closes it.
void raw_wait_for_close(const unique_fd& fd) {
    std::byte sink[256];
    while (::recv(fd.get(), sink, sizeof sink, 0) > 0) {
    }
}

std::vector<std::byte> wire_of(const rcq::endpoint& ep) {
    auto w = rcq::encode(ep);
    return {w.begin(), w.end()};
}

// ---- both roles ------------------------------------------------------------

TEST(TcpHandshake, LoopbackExchangeAndBarrier) {
    auto server = tcp::server(0, 10s);
    ASSERT_NE(server.port(), 0);
    EXPECT_TRUE(server.is_server());
    auto client_side = std::async(std::launch::async, [port = server.port()] {
        auto client = tcp::client("127.0.0.1", port, 10s);
        EXPECT_FALSE(client.is_server());
        auto peer = client.exchange(endpoint_with(2));
        client.barrier();
        return peer;
    });
    EXPECT_EQ(server.exchange(endpoint_with(1)), endpoint_with(2));
    server.barrier();
    EXPECT_EQ(client_side.get(), endpoint_with(1));
}

TEST(TcpHandshake, LoopbackIPv6AndHostName) {
    std::optional<tcp> server;
    try {
        server.emplace(tcp::server(0, 10s, "::"));
    } catch (const rcq::error& e) {
        GTEST_SKIP() << "no IPv6 here: " << e.what();
    }
    for (const char* host : {"::1", "localhost"}) {
        auto this_server = host == std::string("::1") ? std::move(*server) : tcp::server(0, 10s, "::");
        auto client_side = std::async(std::launch::async, [host, port = this_server.port()] {
            auto client = tcp::client(host, port, 10s);
            auto peer = client.exchange(endpoint_with(4));
            client.barrier();
            return peer;
        });
        EXPECT_EQ(this_server.exchange(endpoint_with(3)), endpoint_with(4)) << host;
        this_server.barrier();
        EXPECT_EQ(client_side.get(), endpoint_with(3)) << host;
    }
}

TEST(TcpHandshake, ClientStartedFirstRetriesUntilTheServerListens) {
    std::uint16_t port = 0;
    auto reservation = reserve_port(port);
    auto client_side = std::async(std::launch::async, [port] {
        return tcp::client("127.0.0.1", port, 10s).exchange(endpoint_with(6));
    });
    std::this_thread::sleep_for(300ms); // the client meets a few refusals
    reservation.reset();
    auto server = tcp::server(port, 10s);
    EXPECT_EQ(server.exchange(endpoint_with(5)), endpoint_with(6));
    EXPECT_EQ(client_side.get(), endpoint_with(5));
}

TEST(TcpHandshake, ListeningSocketIsClosedOnceThePeerIsAccepted) {
    auto server = tcp::server(0, 10s);
    auto port = server.port();
    auto client_side = std::async(std::launch::async, [port] {
        auto client = tcp::client("127.0.0.1", port, 10s);
        client.exchange(endpoint_with(8));
        client.barrier();
    });
    server.exchange(endpoint_with(7));
    auto late = raw_socket();
    auto addr = loopback(port);
    EXPECT_NE(::connect(late.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(errno, ECONNREFUSED);
    server.barrier();
    client_side.get();
}

// ---- nobody there -------------------------------------------------------------

TEST(TcpHandshake, ClientWithoutServerFailsWithinItsBudget) {
    std::uint16_t port = 0;
    auto reservation = reserve_port(port);
    auto client = tcp::client("127.0.0.1", port, 500ms);
    auto start = clock_type::now();
    auto msg = error_of([&] { client.exchange(endpoint_with(1)); }, ETIMEDOUT);
    auto elapsed = clock_type::now() - start;
    EXPECT_THAT(msg, HasSubstr("tcp client: could not connect to 127.0.0.1:" + std::to_string(port) +
                               " within 500 ms (last error: Connection refused)"));
    EXPECT_THAT(msg, HasSubstr("is the server running and listening on that port?"));
    EXPECT_GE(elapsed, 450ms);
    EXPECT_LT(elapsed, 5s); // a hang check, not a timing
}

TEST(TcpHandshake, ServerWithoutClientFailsWithinItsBudget) {
    auto server = tcp::server(0, 500ms);
    auto start = clock_type::now();
    auto msg = error_of([&] { server.exchange(endpoint_with(1)); }, ETIMEDOUT);
    auto elapsed = clock_type::now() - start;
    EXPECT_THAT(msg, HasSubstr("tcp server: no client connected to port " + std::to_string(server.port()) +
                               " within 500 ms"));
    EXPECT_GE(elapsed, 450ms);
    EXPECT_LT(elapsed, 5s);
}

TEST(TcpHandshake, PortInUseSuggestsAnotherPort) {
    auto first = tcp::server(0, 1s);
    auto msg = error_of([&] { tcp::server(first.port(), 1s); }, EADDRINUSE);
    EXPECT_THAT(msg, HasSubstr("tcp server: cannot listen on 0.0.0.0:" + std::to_string(first.port())));
    EXPECT_THAT(msg, HasSubstr("already in use"));
    EXPECT_THAT(msg, HasSubstr("pick another port with -p"));
}

TEST(TcpHandshake, BindAddressNotOnThisHost) {
    auto msg = error_of([] { tcp::server(0, 1s, "192.0.2.1"); }, EADDRNOTAVAIL);
    EXPECT_THAT(msg, HasSubstr("tcp server: cannot bind to 192.0.2.1:0"));
    EXPECT_THAT(msg, HasSubstr("not on this host"));
}

TEST(TcpHandshake, UnresolvableHost) {
    auto client = tcp::client("no-such-host.invalid", 1, 500ms);
    try {
        client.exchange(endpoint_with(1));
        FAIL() << "connected to no-such-host.invalid";
    } catch (const rcq::error& e) {
        // Without a name server the lookup fails "temporarily" until the deadline.
        EXPECT_THAT(e.what(), AnyOf(HasSubstr("tcp client: cannot resolve \"no-such-host.invalid\""),
                                    HasSubstr("tcp client: could not connect to no-such-host.invalid:1")));
    }
}

// ---- a peer that misbehaves --------------------------------------------------------

TEST(TcpHandshake, ServerSeesAPeerThatClosesMidExchange) {
    auto server = tcp::server(0, 10s);
    auto peer = std::async(std::launch::async, [port = server.port()] {
        auto fd = raw_connect(port);
        raw_read(fd, rcq::endpoint_wire_size);
        auto wire = wire_of(endpoint_with(2));
        raw_send(fd, {wire.begin(), wire.begin() + 10});
    }); // closes its socket on return
    auto msg = error_of([&] { server.exchange(endpoint_with(1)); }, ECONNRESET);
    EXPECT_THAT(msg, HasSubstr("tcp server: receiving the rest of the client's endpoint from 127.0.0.1:"));
    EXPECT_THAT(msg, HasSubstr("peer closed the connection after 2 of " +
                                   std::to_string(rcq::endpoint_wire_size - 8) + " bytes"));
    peer.get();
}

TEST(TcpHandshake, ClientSeesAServerThatClosesBeforeSending) {
    std::uint16_t port = 0;
    auto listener = raw_listen(port);
    auto peer = std::async(std::launch::async, [&listener] {
        auto fd = raw_accept(listener);
        raw_read(fd, rcq::endpoint_wire_size);
        auto wire = wire_of(endpoint_with(2));
        raw_send(fd, {wire.begin(), wire.begin() + 5});
    });
    auto client = tcp::client("127.0.0.1", port, 10s);
    auto msg = error_of([&] { client.exchange(endpoint_with(1)); }, ECONNRESET);
    EXPECT_THAT(msg, HasSubstr("tcp client: receiving the server's endpoint from 127.0.0.1:" +
                               std::to_string(port)));
    EXPECT_THAT(msg, HasSubstr("peer closed the connection after 5 of 8 bytes"));
    peer.get();
}

TEST(TcpHandshake, PeerSpeakingAnotherProtocolIsNamed) {
    auto server = tcp::server(0, 10s);
    auto peer = std::async(std::launch::async, [port = server.port()] {
        auto fd = raw_connect(port);
        raw_read(fd, rcq::endpoint_wire_size);
        std::mt19937 rng(3);
        std::vector<std::byte> garbage(64);
        for (auto& b : garbage) b = static_cast<std::byte>(rng());
        garbage[0] = std::byte{0x80}; // never "RCQE"
        raw_send(fd, garbage);
        raw_wait_for_close(fd);
    });
    auto msg = error_of([&] { server.exchange(endpoint_with(1)); }, EPROTO);
    EXPECT_THAT(msg, HasSubstr("tcp server, peer 127.0.0.1:"));
    EXPECT_THAT(msg, HasSubstr("endpoint: bad magic 0x80"));
    EXPECT_THAT(msg, HasSubstr("not an rcq program"));
    server.close();
    peer.get();
}

TEST(TcpHandshake, ForeignBannerIsRejectedWithoutWaitingForMore) {
    // An SSH-like server greets with a short line and then waits: the client
    // must not wait for a full endpoint before saying what it got.
    std::uint16_t port = 0;
    auto listener = raw_listen(port);
    auto peer = std::async(std::launch::async, [&listener] {
        auto fd = raw_accept(listener);
        const std::string banner = "SSH-2.0-x\r\n";
        std::vector<std::byte> bytes(banner.size());
        std::transform(banner.begin(), banner.end(), bytes.begin(), [](char c) { return std::byte(c); });
        raw_send(fd, bytes);
        raw_wait_for_close(fd);
    });
    auto client = tcp::client("127.0.0.1", port, 10s);
    auto start = clock_type::now();
    auto msg = error_of([&] { client.exchange(endpoint_with(1)); }, EPROTO);
    EXPECT_THAT(msg, HasSubstr("bad magic 0x5353482d \"SSH-\""));
    EXPECT_LT(clock_type::now() - start, 5s);
    client.close();
    peer.get();
}

TEST(TcpHandshake, SilentPeerFailsWithinTheBudget) {
    auto server = tcp::server(0, 500ms);
    auto peer = std::async(std::launch::async, [port = server.port()] {
        auto fd = raw_connect(port);
        raw_wait_for_close(fd); // connects, reads, never sends
    });
    auto start = clock_type::now();
    auto msg = error_of([&] { server.exchange(endpoint_with(1)); }, ETIMEDOUT);
    auto elapsed = clock_type::now() - start;
    EXPECT_THAT(msg, HasSubstr("tcp server: receiving the client's endpoint from 127.0.0.1:"));
    EXPECT_THAT(msg, HasSubstr("(budget 500 ms): timed out after 0 of 8 bytes"));
    EXPECT_LT(elapsed, 5s);
    server.close();
    peer.get();
}

TEST(TcpHandshake, GarbageInsteadOfTheGoAhead) {
    auto server = tcp::server(0, 10s);
    auto peer = std::async(std::launch::async, [port = server.port()] {
        auto fd = raw_connect(port);
        raw_read(fd, rcq::endpoint_wire_size);
        raw_send(fd, wire_of(endpoint_with(2)));
        raw_send(fd, std::vector<std::byte>(8, std::byte{'X'}));
        raw_wait_for_close(fd);
    });
    EXPECT_EQ(server.exchange(endpoint_with(1)), endpoint_with(2));
    auto msg = error_of([&] { server.barrier(); }, EPROTO);
    EXPECT_THAT(msg, HasSubstr("tcp server: expected the go-ahead \"RCQG\" 00000000 from 127.0.0.1:"));
    EXPECT_THAT(msg, HasSubstr("got 0x5858585858585858"));
    server.close();
    peer.get();
}

// ---- object lifetime -------------------------------------------------------------

TEST(TcpHandshake, UseAfterCloseOrMoveIsAnError) {
    auto server = tcp::server(0, 1s);
    auto moved = std::move(server);
    // NOLINTNEXTLINE(bugprone-use-after-move): the use after move under test
    EXPECT_THAT(error_of([&] { server.exchange(endpoint_with(1)); }, EINVAL),
                HasSubstr("tcp server: used after close()"));
    moved.close();
    moved.close(); // idempotent
    EXPECT_THAT(error_of([&] { moved.barrier(); }, EINVAL), HasSubstr("used after close()"));
}

} // namespace
