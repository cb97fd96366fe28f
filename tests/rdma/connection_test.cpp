// rcq::connection end to end on a real device: two connections of one
// process, server and client, joined by the TCP handshake over loopback.
#include "rdma_env.hpp"

#include <rcq/rcq.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <string>

namespace {

rcq::connection_options options() {
    rcq::connection_options o;
    o.device = rdma_test::device_name();
    o.gid_index = rdma_test::gid_index();
    return o;
}

std::string loopback_host() {
    const char* ip = std::getenv("RCQ_IP");
    return ip != nullptr ? ip : "127.0.0.1";
}

TEST(Connection, SendAndReceiveBothWays) {
    auto listening = rcq::handshake::tcp::server(0, std::chrono::seconds(20));
    const std::uint16_t port = listening.port();
    const auto before = rdma_test::read_packet_counts(rcq::context::open(rdma_test::device_name()).name());

    auto server = std::async(std::launch::async, [&] {
        rcq::connection<> conn(std::move(listening), options());
        EXPECT_EQ(conn.post_recv(0, 1024, 1), 0);
        conn.ready();
        const ibv_wc got = conn.wait("RECV");
        EXPECT_EQ(got.opcode, IBV_WC_RECV);
        EXPECT_EQ(got.byte_len, 1024u);
        // Echo the message back with every byte incremented.
        for (std::size_t i = 0; i < 1024; ++i) conn.buffer()[2048 + i] = conn.buffer()[i] ^ std::byte{0xff};
        EXPECT_EQ(conn.post_send(2048, 1024, 2), 0);
        EXPECT_EQ(conn.wait("SEND").wr_id, 2u);
        return conn.remote().qpn;
    });

    rcq::connection<> conn(rcq::handshake::tcp::client(loopback_host(), port, std::chrono::seconds(20)),
                           options());
    ASSERT_EQ(conn.post_recv(2048, 1024, 1), 0);
    conn.ready();
    for (std::size_t i = 0; i < 1024; ++i) conn.buffer()[i] = std::byte(i * 31 + 5);
    ASSERT_EQ(conn.post_send(0, 1024, 2), 0);
    int completions = 0;
    bool received = false;
    while (completions < 2) {
        const ibv_wc wc = conn.wait("SEND or RECV");
        ++completions;
        if (wc.wr_id == 1) {
            received = true;
            EXPECT_EQ(wc.byte_len, 1024u);
        }
    }
    ASSERT_TRUE(received);
    for (std::size_t i = 0; i < 1024; ++i)
        ASSERT_EQ(conn.buffer()[2048 + i], std::byte(i * 31 + 5) ^ std::byte{0xff}) << "byte " << i;
    EXPECT_EQ(server.get(), conn.local().qpn);

    const auto after = rdma_test::read_packet_counts(rcq::device_name(conn.device()));
    EXPECT_GT(after.sent, before.sent);
    EXPECT_GT(after.received, before.received);
}

TEST(Connection, APeerThatNeverSendsGivesATimeoutError) {
    auto listening = rcq::handshake::tcp::server(0, std::chrono::seconds(20));
    const std::uint16_t port = listening.port();
    auto server = std::async(std::launch::async, [&] {
        rcq::connection<> conn(std::move(listening), options());
        conn.ready();
        // Sends nothing; waits until the client has seen its timeout.
        conn.ready();
    });
    auto opts = options();
    opts.completion_timeout = std::chrono::milliseconds(300);
    rcq::connection<> conn(rcq::handshake::tcp::client(loopback_host(), port, std::chrono::seconds(20)),
                           opts);
    // Nothing posted yet: the timeout says so instead of blaming the peer.
    try {
        conn.wait("nothing at all");
        FAIL() << "wait() returned without a completion";
    } catch (const rcq::error& e) {
        EXPECT_EQ(e.code(), std::errc::timed_out);
        EXPECT_THAT(e.what(), testing::HasSubstr("within 300 ms: nothing was outstanding"));
    }
    // Offsets and lengths outside buffer() are refused before posting.
    const std::size_t size = conn.buffer().size();
    EXPECT_EQ(conn.post_send(size - 8, 64, 9), ERANGE);
    EXPECT_EQ(conn.post_recv(size + 1, 0, 9), ERANGE);
    EXPECT_EQ(conn.post_recv(std::size_t(-1), 64, 9), ERANGE);
    ASSERT_EQ(conn.post_recv(0, 64, 1), 0);
    conn.ready();
    try {
        conn.wait("a message that never comes");
        FAIL() << "wait() returned without a completion";
    } catch (const rcq::error& e) {
        EXPECT_EQ(e.code(), std::errc::timed_out);
        EXPECT_THAT(e.what(), testing::HasSubstr("no completion for a message that never comes within 300 ms"));
        EXPECT_THAT(e.what(), testing::HasSubstr("did it post a matching receive"));
    }
    conn.ready();
    server.get();
}

TEST(Connection, ABarrierThePeerNeverJoinsSaysItMayNotHaveCalledReady) {
    auto listening = rcq::handshake::tcp::server(0, std::chrono::seconds(20));
    const std::uint16_t port = listening.port();
    auto server = std::async(std::launch::async, [&] {
        // Connects, then leaves without ever calling ready().
        rcq::connection<> conn(std::move(listening), options());
    });
    rcq::connection<> conn(rcq::handshake::tcp::client(loopback_host(), port, std::chrono::seconds(20)),
                           options());
    server.get();
    try {
        conn.ready();
        FAIL() << "ready() returned although the peer never called it";
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.what(), testing::HasSubstr("the peer may never have called ready()"));
    }
}

} // namespace
