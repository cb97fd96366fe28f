// Waiting for a particular completion on the connection's one CQ (sends and
// receives share it): wait_recv() and wait_for(wr_id) set the others aside,
// in order, for later waits; a full stash is an error that loses nothing.
// Also the buffers sized at run time and borrowed from any byte range.
#include "rdma_env.hpp"

#include <rcq/rcq.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <future>
#include <sstream>
#include <string>
#include <vector>

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

constexpr std::uint32_t chunk = 16;
constexpr std::uint64_t sends = 40; // more than connection::stash_capacity
constexpr std::size_t reply_at = 4096;

std::byte pattern(std::uint64_t message, std::size_t i) { return std::byte(message * 13 + i); }

TEST(Waiting, AParticularCompletionLeavesTheOthersInOrder) {
    auto listening = rcq::handshake::tcp::server(0, std::chrono::seconds(30));
    const std::uint16_t port = listening.port();

    // The server: its buffer is the caller's std::vector<char>.
    auto server = std::async(std::launch::async, [&] {
        std::vector<char> memory(8192);
        rcq::connection<rcq::buffer::borrowed> conn(std::move(listening), options(),
                                                    {.memory = memory});
        EXPECT_EQ(static_cast<const void*>(conn.buffer().data()), memory.data());
        for (std::uint64_t i = 0; i < sends; ++i)
            EXPECT_EQ(conn.post_recv(i * chunk, chunk, 100 + i), 0);
        conn.ready();
        for (std::uint64_t i = 0; i < sends; ++i) {
            const ibv_wc wc = conn.wait_recv("message " + std::to_string(i));
            EXPECT_EQ(wc.wr_id, 100 + i);
            EXPECT_EQ(wc.opcode, IBV_WC_RECV);
            EXPECT_EQ(wc.byte_len, chunk);
            for (std::size_t b = 0; b < chunk; ++b)
                EXPECT_EQ(conn.buffer()[i * chunk + b], pattern(i, b)) << i << ' ' << b;
        }
        // The client's last message lands here. Whether our reply's SEND
        // completes before or after it arrives is up to the wire; either way
        // wait_recv() returns the RECV and the SEND is kept for wait().
        EXPECT_EQ(conn.post_recv(reply_at + 1024, chunk, 600), 0);
        conn.ready();
        for (std::size_t b = 0; b < 64; ++b) conn.buffer()[reply_at + b] = std::byte(0xc0 ^ b);
        EXPECT_EQ(conn.post_send(reply_at, 64, 500), 0);
        const ibv_wc last = conn.wait_recv("the client's last message");
        EXPECT_EQ(last.wr_id, 600u);
        EXPECT_EQ(last.opcode, IBV_WC_RECV);
        EXPECT_LE(conn.stashed(), 1u);
        const ibv_wc reply = conn.wait("the reply's SEND");
        EXPECT_EQ(reply.wr_id, 500u);
        EXPECT_EQ(reply.opcode, IBV_WC_SEND);
        EXPECT_EQ(conn.stashed(), 0u);
    });

    // The client: an owned buffer whose size is chosen at run time.
    const std::size_t size = 8192 + static_cast<std::size_t>(std::rand() % 2);
    rcq::connection<rcq::buffer::owned<rcq::buffer::run_time_size>> conn(
        rcq::handshake::tcp::client(loopback_host(), port, std::chrono::seconds(30)), options(),
        {.bytes = size});
    ASSERT_EQ(conn.buffer().size(), size);
    ASSERT_EQ(conn.buffer_policy().size(), size);
    ASSERT_EQ(conn.post_recv(reply_at, 64, 1000), 0);
    conn.ready();
    for (std::uint64_t i = 0; i < sends; ++i) {
        for (std::size_t b = 0; b < chunk; ++b) conn.buffer()[i * chunk + b] = pattern(i, b);
        ASSERT_EQ(conn.post_send(i * chunk, chunk, i), 0);
    }

    // Nothing carries wr_id 9999: the wait sets aside completions until the
    // stash is full, then says so instead of dropping one.
    try {
        conn.wait_for(9999, "a request never posted");
        FAIL() << "wait_for() returned a completion nobody posted";
    } catch (const rcq::error& e) {
        EXPECT_EQ(e.code(), std::errc::no_buffer_space);
        EXPECT_THAT(e.what(), testing::HasSubstr("32 completions are already set aside"));
    }
    EXPECT_EQ(conn.stashed(), conn.stash_capacity);

    // wait() hands them back oldest first.
    std::vector<std::uint64_t> seen;
    for (int i = 0; i < 5; ++i) seen.push_back(conn.wait().wr_id);
    // 35 is still in the CQ: polled past 32, 33 and 34, which are set aside.
    EXPECT_EQ(conn.wait_for(35).wr_id, 35u);
    EXPECT_EQ(conn.stashed(), conn.stash_capacity - 5 + 3);
    // 20 is in the stash.
    EXPECT_EQ(conn.wait_for(20).wr_id, 20u);
    while (seen.size() < sends - 2) {
        const ibv_wc wc = conn.wait("the rest of the sends");
        EXPECT_EQ(wc.opcode, IBV_WC_SEND);
        seen.push_back(wc.wr_id);
    }
    std::vector<std::uint64_t> expected;
    for (std::uint64_t i = 0; i < sends; ++i)
        if (i != 20 && i != 35) expected.push_back(i);
    EXPECT_EQ(seen, expected);
    EXPECT_EQ(conn.stashed(), 0u);

    conn.ready(); // the server may now reply
    // Our last message and the server's reply cross: whichever completes
    // first, wait_recv() returns the reply and keeps the SEND.
    ASSERT_EQ(conn.post_send(0, chunk, 2000), 0);
    const ibv_wc reply = conn.wait_recv("the server's reply");
    EXPECT_EQ(reply.wr_id, 1000u);
    EXPECT_EQ(reply.opcode, IBV_WC_RECV);
    EXPECT_EQ(reply.byte_len, 64u);
    EXPECT_LE(conn.stashed(), 1u);
    for (std::size_t b = 0; b < 64; ++b)
        ASSERT_EQ(conn.buffer()[reply_at + b], std::byte(0xc0 ^ b)) << "byte " << b;
    const ibv_wc last = conn.wait_for(2000, "the last message");
    EXPECT_EQ(last.opcode, IBV_WC_SEND);
    EXPECT_EQ(conn.stashed(), 0u);
    server.get();
}

TEST(Waiting, TheNarrationNamesWhatCompleted) {
    auto listening = rcq::handshake::tcp::server(0, std::chrono::seconds(30));
    const std::uint16_t port = listening.port();
    auto server = std::async(std::launch::async, [&] {
        rcq::connection<> conn(std::move(listening), options());
        EXPECT_EQ(conn.post_recv(0, 128, 7), 0);
        conn.ready();
        conn.wait_recv();
        conn.ready();
    });
    std::ostringstream log;
    auto opts = options();
    opts.narrate = &log;
    rcq::connection<> conn(rcq::handshake::tcp::client(loopback_host(), port, std::chrono::seconds(30)),
                           opts);
    conn.ready();
    ASSERT_EQ(conn.post_send(0, 100, 42), 0);
    // Waited for as "anything": the narration still says it was a SEND.
    conn.wait("anything");
    EXPECT_THAT(log.str(), testing::HasSubstr("[rcq] completion: SEND, wr_id 42\n"));
    conn.ready();
    server.get();
}

TEST(Waiting, APeerThatNeverCallsReadyIsATimeoutNotAHang) {
    auto listening = rcq::handshake::tcp::server(0, std::chrono::seconds(30));
    const std::uint16_t port = listening.port();
    std::promise<void> client_done;
    auto server = std::async(std::launch::async, [&] {
        rcq::connection<> conn(std::move(listening), options());
        // Never calls ready(); stays connected until the client gave up.
        client_done.get_future().wait();
    });
    rcq::connection<> conn(rcq::handshake::tcp::client(loopback_host(), port, std::chrono::seconds(3)),
                           options());
    try {
        conn.ready();
        FAIL() << "ready() returned although the peer never called it";
    } catch (const rcq::error& e) {
        EXPECT_EQ(e.code(), std::errc::timed_out) << e.what();
        std::printf("the error: %s\n", e.what()); // the README's troubleshooting table quotes it
    }
    client_done.set_value();
    server.get();
}

TEST(Buffers, ARunTimeSizeOfZeroIsRefused) {
    rcq::context ctx = rcq::context::open(rdma_test::device_name());
    rcq::pd pd(ctx);
    try {
        rcq::buffer::owned<rcq::buffer::run_time_size> b(pd, {.bytes = 0});
        FAIL() << "a 0-byte buffer was made";
    } catch (const rcq::error& e) {
        EXPECT_EQ(e.code(), std::errc::invalid_argument);
        EXPECT_THAT(e.what(), testing::HasSubstr("config.bytes is 0"));
    }
    rcq::buffer::owned<rcq::buffer::run_time_size> odd(pd, {.bytes = 5000});
    EXPECT_EQ(odd.size(), 5000u);
    EXPECT_EQ(odd.region().size(), 5000u);
}

TEST(Buffers, BorrowedFromAnArrayOfUint8AndFromNothing) {
    rcq::context ctx = rcq::context::open(rdma_test::device_name());
    rcq::pd pd(ctx);
    std::array<std::uint8_t, 4096> memory{};
    rcq::buffer::borrowed b(pd, {.memory = memory});
    EXPECT_EQ(static_cast<const void*>(b.bytes().data()), memory.data());
    EXPECT_EQ(b.region().size(), memory.size());
    std::vector<char> none;
    EXPECT_THROW(rcq::buffer::borrowed(pd, {.memory = none}), rcq::error);
}

} // namespace
