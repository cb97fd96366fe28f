// The TCP handshake's liveness signal (peer_closed) and the address family
// it reports for the GID choice, over loopback.
#include "support.hpp"

#include <rcq/handshake/tcp.hpp>

#include <gtest/gtest.h>

#include <sys/socket.h>

#include <chrono>
#include <future>
#include <optional>
#include <thread>

namespace {

using namespace std::chrono_literals;
using rcq::handshake::tcp;
using unit_test::endpoint_with;

// Polls `closed` for up to 10 s; true as soon as it holds.
template <class F>
bool becomes_true(F closed) {
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (!closed()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

TEST(Liveness, ThePeerClosingItsHandshakeIsSeenAndAnOpenOneIsNot) {
    auto server = tcp::server(0, 10s);
    EXPECT_FALSE(server.peer_closed()); // not connected yet
    std::optional<tcp> client = tcp::client("127.0.0.1", server.port(), 10s);
    auto peer = std::async(std::launch::async, [&] { return client->exchange(endpoint_with(2)); });
    EXPECT_EQ(server.exchange(endpoint_with(1)).qpn, 2u);
    EXPECT_EQ(peer.get().qpn, 1u);
    auto go = std::async(std::launch::async, [&] { client->barrier(); });
    server.barrier();
    go.get();
    // Both alive, nothing pending: neither sees the other gone.
    EXPECT_FALSE(server.peer_closed());
    EXPECT_FALSE(client->peer_closed());
    client.reset(); // the client's process would end the same way
    EXPECT_TRUE(becomes_true([&] { return server.peer_closed(); }));
}

TEST(Liveness, DataWaitingToBeReadIsNotAClose) {
    auto server = tcp::server(0, 10s);
    std::optional<tcp> client = tcp::client("127.0.0.1", server.port(), 10s);
    auto peer = std::async(std::launch::async, [&] { return client->exchange(endpoint_with(2)); });
    server.exchange(endpoint_with(1));
    peer.get();
    // The client's go-ahead arrives, unread by the server: still alive.
    auto go = std::async(std::launch::async, [&] {
        try {
            client->barrier();
        } catch (const rcq::error&) {
        }
    });
    std::this_thread::sleep_for(100ms);
    EXPECT_FALSE(server.peer_closed());
    server.barrier();
    go.get();
}

TEST(Liveness, TheClientNamesItsServersAddressFamily) {
    EXPECT_EQ(tcp::client("127.0.0.1", 1, 1s).peer_family(), AF_INET);
    EXPECT_EQ(tcp::client("::1", 1, 1s).peer_family(), AF_INET6);
    EXPECT_EQ(tcp::client("localhost", 1, 1s).peer_family(), AF_UNSPEC); // a name: not known
    EXPECT_EQ(tcp::server(0, 1s).peer_family(), AF_UNSPEC);
}

} // namespace
