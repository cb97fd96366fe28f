// The RoCE settings agreed from two endpoints (path MTU, READ/atomic depth,
// GID family) and the automatic GID choice: pure functions, no device.
#include "support.hpp"

#include <rcq/agreement.hpp>
#include <rcq/gid.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace {

using ::testing::HasSubstr;
using unit_test::endpoint_with;
using unit_test::error_of;

rcq::endpoint with_mtu(std::uint16_t mtu) {
    auto ep = endpoint_with(1);
    ep.mtu = mtu;
    return ep;
}

TEST(Agreement, PathMtuIsTheSmallerOfTheTwo) {
    EXPECT_EQ(rcq::agree(with_mtu(4096), with_mtu(1024)).path_mtu, IBV_MTU_1024);
    EXPECT_EQ(rcq::agree(with_mtu(1024), with_mtu(4096)).path_mtu, IBV_MTU_1024);
    EXPECT_EQ(rcq::agree(with_mtu(256), with_mtu(2048)).path_mtu, IBV_MTU_256);
    EXPECT_EQ(rcq::agree(with_mtu(4096), with_mtu(4096)).path_mtu, IBV_MTU_4096);
}

TEST(Agreement, APeerMtuThatIsNoPathMtuIsRefused) {
    for (std::uint16_t bad : {0, 1, 1000, 1500, 8192, 65535}) {
        auto msg = error_of([&] { rcq::agree(with_mtu(1024), with_mtu(bad)); }, EPROTO);
        EXPECT_THAT(msg, HasSubstr("the peer's endpoint carries MTU " + std::to_string(bad) +
                                   ", not a path MTU (256, 512, 1024, 2048 or 4096 bytes)"));
    }
    EXPECT_THAT(error_of([&] { rcq::agree(with_mtu(9000), with_mtu(1024)); }, EINVAL),
                HasSubstr("our endpoint's MTU 9000 is not a path MTU"));
}

TEST(Agreement, InitiatorDepthIsCutToThePeersResponderResources) {
    auto ours = endpoint_with(1), theirs = endpoint_with(2);
    ours.initiator_depth = 16;
    ours.responder_resources = 4;
    theirs.initiator_depth = 2;
    theirs.responder_resources = 8;
    const auto mine = rcq::agree(ours, theirs);
    EXPECT_EQ(mine.max_rd_atomic, 8);      // we may issue 16, the peer takes 8
    EXPECT_EQ(mine.max_dest_rd_atomic, 2); // we accept 4, the peer issues 2
    // The peer, agreeing from the other end, fits ours exactly.
    const auto peer = rcq::agree(theirs, ours);
    EXPECT_EQ(peer.max_rd_atomic, 2);
    EXPECT_LE(peer.max_rd_atomic, mine.max_dest_rd_atomic);
    EXPECT_LE(mine.max_rd_atomic, peer.max_dest_rd_atomic);
}

TEST(Agreement, GidsOfDifferentFamiliesAreRefused) {
    auto v4 = endpoint_with(1), v6 = endpoint_with(2);
    v6.gid = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    auto msg = error_of([&] { rcq::agree(v4, v6); }, EINVAL);
    EXPECT_THAT(msg, HasSubstr("our GID 0000:0000:0000:0000:0000:ffff:0a00:0007 is IPv4 and the "
                               "peer's fd00:0000:0000:0000:0000:0000:0000:0002 is IPv6"));
    EXPECT_THAT(msg, HasSubstr("choose a GID of the same family"));
    EXPECT_THAT(error_of([&] { rcq::agree(v6, v4); }, EINVAL), HasSubstr("is IPv6 and the peer's"));
}

rcq::gid_entry entry(std::uint32_t index, rcq::gid_type type, rcq::gid_bytes gid) {
    return {.index = index, .type = type, .gid = gid};
}

const rcq::gid_bytes link_local{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0, 0xff, 0xfe, 0x12, 0x34, 0x56};
const rcq::gid_bytes global_v6{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
const rcq::gid_bytes mapped_v4{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 2, 15};

TEST(GidChoice, PrefersThePeersFamilyAndRoutableEntries) {
    using rcq::gid_type;
    using family = rcq::address_family;
    const std::vector<rcq::gid_entry> table{
        entry(0, gid_type::roce_v1, link_local), entry(1, gid_type::roce_v2, link_local),
        entry(2, gid_type::roce_v1, mapped_v4),  entry(3, gid_type::roce_v2, mapped_v4),
        entry(4, gid_type::roce_v1, global_v6),  entry(5, gid_type::roce_v2, global_v6)};
    EXPECT_EQ(rcq::preferred_gid(table)->index, 3u);
    EXPECT_EQ(rcq::preferred_gid(table, family::ipv4)->index, 3u);
    EXPECT_EQ(rcq::preferred_gid(table, family::ipv6)->index, 5u);
}

TEST(GidChoice, LinkLocalOnlyWhenNothingElseAndItSaysSo) {
    using rcq::gid_type;
    const std::vector<rcq::gid_entry> table{entry(0, gid_type::roce_v2, link_local),
                                            entry(1, gid_type::roce_v2, mapped_v4)};
    // The link-local entry comes first in the table but is not chosen...
    EXPECT_EQ(rcq::preferred_gid(table)->index, 1u);
    // ...unless the peer is IPv6: an IPv4 GID cannot reach it at all.
    EXPECT_EQ(rcq::preferred_gid(table, rcq::address_family::ipv6)->index, 0u);
    const std::vector<rcq::gid_entry> only_link_local{entry(0, gid_type::roce_v1, link_local),
                                                      entry(1, gid_type::roce_v2, link_local)};
    const auto chosen = rcq::preferred_gid(only_link_local);
    ASSERT_TRUE(chosen);
    EXPECT_EQ(chosen->index, 1u);
    EXPECT_TRUE(chosen->is_link_local());
    EXPECT_EQ(chosen->kind(), "RoCE v2 IPv6 link-local");
    EXPECT_FALSE(rcq::preferred_gid({entry(0, gid_type::roce_v1, mapped_v4)}));
}

} // namespace
