// The user-written handshake policy of examples/rc_pingpong_handshake.hpp
// (ibv_rc_pingpong's text exchange): its format against the stock program's,
// malformed input, and an exchange over loopback. No RDMA device needed.
#include "../../examples/rc_pingpong_handshake.hpp"

#include <rcq/policy.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>

namespace {

using example::rc_pingpong_handshake;

static_assert(rcq::handshake_policy<rc_pingpong_handshake>);

rcq::endpoint sample() {
    rcq::endpoint e{};
    e.lid = 0;
    e.qpn = 0x11;
    e.psn = 0xabcdef;
    e.gid = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 2, 15};
    e.mtu = 1024; // what parse() fills in: ibv_rc_pingpong's defaults
    e.initiator_depth = 1;
    e.responder_resources = 1;
    return e;
}

TEST(RcPingpongHandshake, FormatsAsIbvRcPingpongDoes) {
    const auto text = rc_pingpong_handshake::format(sample());
    // What ibv_rc_pingpong sends for the same values: %04x:%06x:%06x: and the
    // GID's 16 bytes as 32 hex digits, then a NUL.
    EXPECT_EQ(std::string(text.data()), "0000:000011:abcdef:00000000000000000000ffff0a00020f");
    EXPECT_EQ(text.back(), '\0');
    EXPECT_EQ(rc_pingpong_handshake::parse(std::string_view(text.data(), text.size())), sample());
}

TEST(RcPingpongHandshake, RefusesMalformedText) {
    auto parse = [](std::string text) {
        text.resize(rc_pingpong_handshake::message_size, '\0');
        return rc_pingpong_handshake::parse(text);
    };
    EXPECT_THROW(parse("0000-000011:abcdef:00000000000000000000ffff0a00020f"), rcq::error);
    EXPECT_THROW(parse("0000:0000zz:abcdef:00000000000000000000ffff0a00020f"), rcq::error);
    EXPECT_THROW(parse("0000:000011:abcdef:00000000000000000000ffff0a0002"), rcq::error);
    EXPECT_THROW(parse("RCQE"), rcq::error);
    EXPECT_THROW(rc_pingpong_handshake::parse("short"), rcq::error);
    try {
        parse("0000:000011:abcdef:0000000000000000000Xffff0a00020f");
        FAIL();
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.what(), testing::HasSubstr("not ibv_rc_pingpong's address message"));
    }
}

TEST(RcPingpongHandshake, ExchangesOverLoopback) {
    auto server = rc_pingpong_handshake::server(0, std::chrono::seconds(10));
    const std::uint16_t port = server.port();
    rcq::endpoint theirs = sample();
    theirs.qpn = 0x22;
    auto done = std::async(std::launch::async, [&] { return server.exchange(theirs); });
    auto client = rc_pingpong_handshake::client("127.0.0.1", port, std::chrono::seconds(10));
    EXPECT_EQ(client.exchange(sample()), theirs);
    EXPECT_EQ(done.get(), sample());
}

TEST(RcPingpongHandshake, NoClientWithinTheDeadlineIsAnError) {
    auto server = rc_pingpong_handshake::server(0, std::chrono::milliseconds(300));
    EXPECT_THROW(server.exchange(sample()), rcq::error);
}

} // namespace
