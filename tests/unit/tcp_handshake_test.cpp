// rcq::handshake::tcp over loopback: both roles, and every way a peer can
// misbehave (absent, silent, closing early, speaking another protocol) ending
// in a clear rcq::error within the time budget rather than a hang.
#include "raw_peer.hpp"
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
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using unit_test::endpoint_with;
using unit_test::error_of;
using unit_test::bytes_of;
using unit_test::bytes_until_close;
using unit_test::loopback;
using unit_test::raw_connect;
using unit_test::raw_send;
using unit_test::raw_socket;
using unit_test::send_slowly;
using unit_test::wire_of;

using namespace std::chrono_literals;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using rcq::detail::unique_fd;
using rcq::handshake::tcp;
using clock_type = std::chrono::steady_clock;

// ---- a raw peer that does exactly what a test tells it -----------------------




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


// An endpoint header with a valid magic and version but the largest length.
std::vector<std::byte> oversized_header() {
    auto wire = wire_of(endpoint_with(2));
    wire.resize(8);
    wire[6] = wire[7] = std::byte{0xff};
    return wire;
}



void flood(const unique_fd& fd, std::size_t total) {
    timeval tv{10, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    std::vector<std::byte> chunk(1 << 16, std::byte{'A'});
    for (std::size_t sent = 0; sent < total;) {
        auto n = ::send(fd.get(), chunk.data(), std::min(chunk.size(), total - sent), MSG_NOSIGNAL);
        if (n <= 0) return; // refused: the server closed the connection
        sent += static_cast<std::size_t>(n);
    }
}

const std::string wire_size = std::to_string(rcq::endpoint_wire_size);

// ---- strangers connecting to the server ------------------------------------------

// The first connections of any kind (a scanner that closes at once, an HTTP
// probe, a silent one, a slow one, a 16 MiB flood, a bad length, a truncated
// endpoint) neither learn anything nor take the real client's place.
TEST(TcpHandshake, StrangersConnectingFirstGetNothingAndTheClientIsServed) {
    auto server = tcp::server(0, 20s);
    const auto port = server.port();
    std::vector<std::future<std::size_t>> strangers;
    auto stranger = [&](auto behaviour) {
        auto fd = std::make_shared<unique_fd>(raw_connect(port)); // connected before the client
        strangers.push_back(std::async(std::launch::async, [fd, behaviour] {
            behaviour(*fd);
            return bytes_until_close(*fd);
        }));
    };
    stranger([](const unique_fd& fd) { ::shutdown(fd.get(), SHUT_WR); }); // scanner
    stranger([](const unique_fd& fd) { raw_send(fd, bytes_of("GET / HTTP/1.0\r\n\r\n")); });
    stranger([](const unique_fd&) {}); // silent, stays connected
    stranger([](const unique_fd& fd) { send_slowly(fd, wire_of(endpoint_with(9)), 1s); });
    stranger([](const unique_fd& fd) { flood(fd, 16u << 20); });
    stranger([](const unique_fd& fd) { raw_send(fd, oversized_header()); });
    stranger([](const unique_fd& fd) {
        auto wire = wire_of(endpoint_with(9));
        raw_send(fd, {wire.begin(), wire.begin() + 20});
        ::shutdown(fd.get(), SHUT_WR);
    });

    auto client_side = std::async(std::launch::async, [port] {
        auto client = tcp::client("127.0.0.1", port, 20s);
        auto peer = client.exchange(endpoint_with(2));
        client.barrier();
        return peer;
    });
    EXPECT_EQ(server.exchange(endpoint_with(1)), endpoint_with(2));
    server.barrier();
    EXPECT_EQ(client_side.get(), endpoint_with(1));
    for (auto& s : strangers) EXPECT_EQ(s.get(), 0u) << "a stranger received bytes";
}

TEST(TcpHandshake, ASilentConnectionDoesNotHoldUpTheClientBehindIt) {
    auto server = tcp::server(0, 20s);
    auto silent = raw_connect(server.port());
    auto client_side = std::async(std::launch::async, [port = server.port()] {
        auto client = tcp::client("127.0.0.1", port, 20s);
        return client.exchange(endpoint_with(2));
    });
    auto start = clock_type::now();
    EXPECT_EQ(server.exchange(endpoint_with(1)), endpoint_with(2));
    EXPECT_LT(clock_type::now() - start, tcp::hello_timeout); // not after the silent one's cut-off
    EXPECT_EQ(client_side.get(), endpoint_with(1));
}

TEST(TcpHandshake, ServerDropsAPeerThatClosesMidEndpointAndKeepsListening) {
    auto server = tcp::server(0, 1s);
    auto peer = std::async(std::launch::async, [port = server.port()] {
        auto fd = raw_connect(port);
        auto wire = wire_of(endpoint_with(2));
        raw_send(fd, {wire.begin(), wire.begin() + 10});
        ::shutdown(fd.get(), SHUT_WR);
        return bytes_until_close(fd);
    });
    auto msg = error_of([&] { server.exchange(endpoint_with(1)); }, ETIMEDOUT);
    EXPECT_THAT(msg, HasSubstr("tcp server: no rcq client on port " + std::to_string(server.port()) +
                               " within 1 s (1 connection(s) refused, the last: 127.0.0.1:"));
    EXPECT_THAT(msg, HasSubstr("closed the connection after 10 of " + wire_size + " bytes"));
    EXPECT_EQ(peer.get(), 0u);
}

TEST(TcpHandshake, PeerSpeakingAnotherProtocolIsNamedAndToldNothing) {
    auto server = tcp::server(0, 1s);
    auto peer = std::async(std::launch::async, [port = server.port()] {
        auto fd = raw_connect(port);
        std::mt19937 rng(3);
        std::vector<std::byte> garbage(64);
        for (auto& b : garbage) b = static_cast<std::byte>(rng());
        garbage[0] = std::byte{0x80}; // never "RCQE"
        raw_send(fd, garbage);
        return bytes_until_close(fd);
    });
    auto msg = error_of([&] { server.exchange(endpoint_with(1)); }, ETIMEDOUT);
    EXPECT_THAT(msg, HasSubstr("was refused: endpoint: bad magic 0x80"));
    EXPECT_THAT(msg, HasSubstr("the client must be an rcq program of the same release"));
    EXPECT_EQ(peer.get(), 0u);
}

TEST(TcpHandshake, OversizedLengthIsRefusedByBothRoles) {
    auto server = tcp::server(0, 1s);
    auto peer = std::async(std::launch::async, [port = server.port()] {
        auto fd = raw_connect(port);
        raw_send(fd, oversized_header());
        return bytes_until_close(fd);
    });
    auto msg = error_of([&] { server.exchange(endpoint_with(1)); }, ETIMEDOUT);
    EXPECT_THAT(msg, HasSubstr("payload length 65535 does not match"));
    EXPECT_EQ(peer.get(), 0u);

    std::uint16_t port = 0;
    auto listener = raw_listen(port);
    auto fake_server = std::async(std::launch::async, [&listener] {
        auto fd = raw_accept(listener);
        raw_read(fd, rcq::endpoint_wire_size);
        raw_send(fd, oversized_header());
        raw_wait_for_close(fd);
    });
    auto client = tcp::client("127.0.0.1", port, 10s);
    EXPECT_THAT(error_of([&] { client.exchange(endpoint_with(1)); }, EPROTO),
                HasSubstr("payload length 65535 does not match"));
    client.close();
    fake_server.get();
}

TEST(TcpHandshake, ServerCutsOffAPeerSendingOneBytePerSecond) {
    auto server = tcp::server(0, 2500ms);
    auto peer = std::async(std::launch::async, [port = server.port()] {
        auto fd = raw_connect(port);
        send_slowly(fd, wire_of(endpoint_with(2)), 1s);
    });
    auto start = clock_type::now();
    auto msg = error_of([&] { server.exchange(endpoint_with(1)); }, ETIMEDOUT);
    EXPECT_LT(clock_type::now() - start, 8s); // a hang check, not a timing
    EXPECT_THAT(msg, HasSubstr("within 2500 ms (1 connection(s) still sending an incomplete endpoint)"));
    server.close();
    peer.get();
}

TEST(TcpHandshake, ServerRefusesA16MiBFloodAndKeepsListening) {
    auto server = tcp::server(0, 20s);
    auto flooder = std::async(std::launch::async, [port = server.port()] {
        auto fd = raw_connect(port);
        flood(fd, 16u << 20);
        return bytes_until_close(fd);
    });
    std::this_thread::sleep_for(100ms); // let the flood start first (not needed for the result)
    auto client_side = std::async(std::launch::async, [port = server.port()] {
        auto client = tcp::client("127.0.0.1", port, 20s);
        return client.exchange(endpoint_with(2));
    });
    EXPECT_EQ(server.exchange(endpoint_with(1)), endpoint_with(2));
    EXPECT_EQ(client_side.get(), endpoint_with(1));
    EXPECT_EQ(flooder.get(), 0u);
}

// ---- a server that misbehaves ------------------------------------------------------

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

TEST(TcpHandshake, ClientSeesAServerThatClosesAtOnce) {
    std::uint16_t port = 0;
    auto listener = raw_listen(port);
    auto peer = std::async(std::launch::async, [&listener] { raw_accept(listener); });
    auto client = tcp::client("127.0.0.1", port, 10s);
    try {
        client.exchange(endpoint_with(1));
        ADD_FAILURE() << "no error";
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.code().value(), AnyOf(ECONNRESET, EPIPE)) << e.what();
        EXPECT_THAT(e.what(), HasSubstr("the peer exited or gave up"));
    }
    peer.get();
}

TEST(TcpHandshake, ClientSeesASilentServerWithinItsBudget) {
    std::uint16_t port = 0;
    auto listener = raw_listen(port);
    auto peer = std::async(std::launch::async, [&listener] {
        auto fd = raw_accept(listener);
        raw_wait_for_close(fd);
    });
    auto client = tcp::client("127.0.0.1", port, 500ms);
    auto start = clock_type::now();
    auto msg = error_of([&] { client.exchange(endpoint_with(1)); }, ETIMEDOUT);
    EXPECT_LT(clock_type::now() - start, 5s);
    EXPECT_THAT(msg, HasSubstr("(budget 500 ms): timed out after 0 of 8 bytes"));
    client.close();
    peer.get();
}

TEST(TcpHandshake, ClientCutsOffAServerSendingOneBytePerSecond) {
    std::uint16_t port = 0;
    auto listener = raw_listen(port);
    auto peer = std::async(std::launch::async, [&listener] {
        auto fd = raw_accept(listener);
        raw_read(fd, rcq::endpoint_wire_size);
        send_slowly(fd, wire_of(endpoint_with(2)), 1s);
    });
    auto client = tcp::client("127.0.0.1", port, 2500ms);
    auto start = clock_type::now();
    auto msg = error_of([&] { client.exchange(endpoint_with(1)); }, ETIMEDOUT);
    EXPECT_LT(clock_type::now() - start, 8s);
    EXPECT_THAT(msg, HasSubstr("timed out after"));
    client.close();
    peer.get();
}

TEST(TcpHandshake, ClientRefusesA16MiBFloodAtOnce) {
    std::uint16_t port = 0;
    auto listener = raw_listen(port);
    auto peer = std::async(std::launch::async, [&listener] {
        auto fd = raw_accept(listener);
        raw_read(fd, rcq::endpoint_wire_size);
        flood(fd, 16u << 20);
    });
    auto client = tcp::client("127.0.0.1", port, 10s);
    EXPECT_THAT(error_of([&] { client.exchange(endpoint_with(1)); }, EPROTO),
                HasSubstr("bad magic 0x41414141 \"AAAA\""));
    client.close();
    peer.get();
}

TEST(TcpHandshake, ForeignBannerIsRejectedWithoutWaitingForMore) {
    // An SSH-like server greets with a short line and then waits: the client
    // must not wait for a full endpoint before saying what it got.
    std::uint16_t port = 0;
    auto listener = raw_listen(port);
    auto peer = std::async(std::launch::async, [&listener] {
        auto fd = raw_accept(listener);
        raw_send(fd, bytes_of("SSH-2.0-x\r\n"));
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
        return bytes_until_close(fd); // connects, reads, never sends
    });
    auto start = clock_type::now();
    auto msg = error_of([&] { server.exchange(endpoint_with(1)); }, ETIMEDOUT);
    auto elapsed = clock_type::now() - start;
    EXPECT_THAT(msg, HasSubstr("tcp server: no rcq client on port " + std::to_string(server.port()) +
                               " within 500 ms (1 connection(s) still sending an incomplete endpoint)"));
    EXPECT_LT(elapsed, 5s);
    server.close();
    EXPECT_EQ(peer.get(), 0u);
}

TEST(TcpHandshake, GarbageInsteadOfTheGoAhead) {
    auto server = tcp::server(0, 10s);
    auto peer = std::async(std::launch::async, [port = server.port()] {
        auto fd = raw_connect(port);
        raw_send(fd, wire_of(endpoint_with(2)));
        raw_read(fd, rcq::endpoint_wire_size);
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

// ---- time budgets at their extremes ------------------------------------------------

TEST(TcpHandshake, NoTimeLimitMeansTheServerWaits) {
    using ms = std::chrono::milliseconds;
    auto server = tcp::server(0, ms::max());
    auto server_side = std::async(std::launch::async, [&server] {
        auto peer = server.exchange(endpoint_with(1));
        server.barrier();
        return peer;
    });
    EXPECT_EQ(server_side.wait_for(300ms), std::future_status::timeout) << "the server gave up at once";
    auto client = tcp::client("127.0.0.1", server.port(), ms::max());
    EXPECT_EQ(client.exchange(endpoint_with(2)), endpoint_with(1));
    client.barrier();
    EXPECT_EQ(server_side.get(), endpoint_with(2));
}

TEST(TcpHandshake, ZeroOrNegativeTimeoutIsRefused) {
    using ms = std::chrono::milliseconds;
    for (auto t : {ms::zero(), ms{-1}, ms::min()}) {
        EXPECT_THAT(error_of([&] { tcp::server(0, t); }, EINVAL),
                    HasSubstr("tcp server: the timeout must be positive"));
        EXPECT_THAT(error_of([&] { tcp::client("127.0.0.1", 1, t); }, EINVAL),
                    HasSubstr("for no time limit, give std::chrono::milliseconds::max()"));
    }
}

TEST(TcpHandshake, TheBarrierGetsItsOwnBudgetAfterALongWait) {
    // The server waits 1.5 s of its 2 s for the client; the barrier, which
    // the client reaches 1 s later, must still have time.
    auto server = tcp::server(0, 2s);
    auto client_side = std::async(std::launch::async, [port = server.port()] {
        std::this_thread::sleep_for(1500ms);
        auto client = tcp::client("127.0.0.1", port, 10s);
        client.exchange(endpoint_with(2));
        std::this_thread::sleep_for(1s);
        client.barrier();
    });
    EXPECT_EQ(server.exchange(endpoint_with(1)), endpoint_with(2));
    server.barrier();
    client_side.get();
}

TEST(TcpHandshake, EachConnectAttemptGetsAShareOfTheBudget) {
    auto now = rcq::deadline::clock::now();
    rcq::deadline dl(now + 10s);
    auto share = rcq::detail::connect_attempt_deadline(dl, 2).at() - now;
    EXPECT_GT(share, 4s);
    EXPECT_LT(share, 6s);
    EXPECT_EQ(rcq::detail::connect_attempt_deadline(dl, 1).at(), dl.at()); // the last gets all
    EXPECT_LT(rcq::detail::connect_attempt_deadline(dl, 1000).at() - now, 20ms);
    // No overflow with no time limit, nor with an expired deadline.
    auto unlimited = rcq::deadline::after(std::chrono::milliseconds::max());
    EXPECT_GT(rcq::detail::connect_attempt_deadline(unlimited, 2).at(), now + 24h * 365 * 100);
    rcq::deadline past(now - 1s);
    EXPECT_EQ(rcq::detail::connect_attempt_deadline(past, 3).at(), past.at());
}

TEST(TcpHandshake, CallsOutOfOrder) {
    auto server = tcp::server(0, 1s);
    EXPECT_THAT(error_of([&] { server.barrier(); }, EINVAL),
                HasSubstr("tcp server: barrier() called before exchange()"));
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
