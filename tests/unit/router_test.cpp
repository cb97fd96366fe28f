// rcq::router on synthetic work completions: no device needed.
#include "support.hpp"

#include <rcq/router.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

namespace {

using ::testing::HasSubstr;
using unit_test::error_of;

struct session {
    std::uint32_t qpn = 0;
    std::vector<std::uint64_t> wr_ids{}; // what was routed here, in order
};

ibv_wc completion(std::uint32_t qpn, std::uint64_t wr_id) {
    ibv_wc wc{};
    wc.qp_num = qpn;
    wc.wr_id = wr_id;
    wc.status = IBV_WC_SUCCESS;
    return wc;
}

TEST(Router, AFullTableRefusesOneMoreAndKeepsTheOthers) {
    rcq::router<session> routes(8);
    std::vector<session> s(9);
    for (std::uint32_t i = 0; i < 8; ++i) ASSERT_EQ(routes.add(0x100 + i, s[i]), 0) << i;
    EXPECT_EQ(routes.size(), 8u);
    EXPECT_EQ(routes.add(0x200, s[8]), ENOSPC);
    EXPECT_EQ(routes.add(0x103, s[8]), EEXIST) << "a duplicate is reported as such, even when full";
    EXPECT_EQ(routes.find(0x200), nullptr);
    for (std::uint32_t i = 0; i < 8; ++i) EXPECT_EQ(routes.find(0x100 + i), &s[i]) << i;
}

TEST(Router, ARemovedQpnIsUnknownAndItsPlaceCanBeReused) {
    rcq::router<session> routes(2);
    session a, b, c;
    ASSERT_EQ(routes.add(7, a), 0);
    ASSERT_EQ(routes.add(8, b), 0);
    EXPECT_EQ(routes.remove(7), 0);
    EXPECT_EQ(routes.remove(7), ENOENT);
    EXPECT_EQ(routes.find(7), nullptr);
    EXPECT_EQ(routes.find(8), &b);
    ASSERT_EQ(routes.add(9, c), 0);
    EXPECT_EQ(routes.find(9), &c);
    ASSERT_EQ(routes.add(7, a), ENOSPC);
    EXPECT_EQ(routes.remove(8), 0);
    ASSERT_EQ(routes.add(7, a), 0);
    EXPECT_EQ(routes.find(7), &a);
    EXPECT_EQ(routes.size(), 2u);
}

TEST(Router, QpnsAre24BitsAndHigherBitsAreMasked) {
    rcq::router<session> routes(4);
    session a, zero;
    ASSERT_EQ(routes.add(0xff000005u, a), 0);
    EXPECT_EQ(routes.find(5), &a);
    EXPECT_EQ(routes.find(0x01000005u), &a);
    EXPECT_EQ(routes.add(5, a), EEXIST);
    EXPECT_EQ(routes.find(0xffffff), nullptr);
    // QPN 0 is a key like any other, not the mark of an empty slot.
    EXPECT_EQ(routes.find(0), nullptr);
    ASSERT_EQ(routes.add(0x7000000u, zero), 0);
    EXPECT_EQ(routes.find(0), &zero);
    EXPECT_EQ(routes.remove(0xab000000u), 0);
    EXPECT_EQ(routes.find(0), nullptr);
    EXPECT_EQ(routes.find(5), &a);
}

TEST(Router, CapacityOutOfRangeIsRefused) {
    EXPECT_THAT(error_of([] { rcq::router<session> r(0); }, EINVAL), HasSubstr("capacity 0"));
    EXPECT_THAT(error_of([] { rcq::router<session> r(rcq::router<session>::max_capacity + 1); },
                         EINVAL),
                HasSubstr("route 1 to 2^24 QPs"));
}

TEST(Router, AMovedFromRouterRefusesAddAndRemove) {
    rcq::router<session> routes(4);
    session a;
    ASSERT_EQ(routes.add(5, a), 0);
    rcq::router<session> moved = std::move(routes);
    // NOLINTNEXTLINE(bugprone-use-after-move): the mistake under test
    EXPECT_EQ(routes.add(6, a), EBADF);
    EXPECT_EQ(routes.remove(5), EBADF); // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(routes.size(), 0u);       // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(moved.find(5), &a);
    EXPECT_EQ(moved.size(), 1u);
}

// Many random adds and removes against a plain map: the backward-shift
// deletion must never lose an entry nor keep a removed one.
TEST(Router, AgreesWithAMapOverRandomAddsAndRemoves) {
    constexpr std::size_t capacity = 64;
    rcq::router<session> routes(capacity);
    std::vector<session> targets(capacity * 4);
    std::unordered_map<std::uint32_t, session*> model;
    std::mt19937 rng(11);
    for (int step = 0; step < 200000; ++step) {
        // Few distinct keys, so that probe runs collide and wrap around.
        const std::uint32_t qpn = static_cast<std::uint32_t>(rng() % 200) * 0x10001u;
        session& t = targets[rng() % targets.size()];
        if (rng() % 2 == 0) {
            const int rc = routes.add(qpn, t);
            if (model.count(qpn & 0xffffff) != 0)
                ASSERT_EQ(rc, EEXIST);
            else if (model.size() == capacity)
                ASSERT_EQ(rc, ENOSPC);
            else {
                ASSERT_EQ(rc, 0);
                model[qpn & 0xffffff] = &t;
            }
        } else {
            ASSERT_EQ(routes.remove(qpn), model.erase(qpn & 0xffffff) != 0 ? 0 : ENOENT);
        }
        ASSERT_EQ(routes.size(), model.size());
        if (step % 97 == 0)
            for (std::uint32_t k = 0; k < 200; ++k) {
                const std::uint32_t key = (k * 0x10001u) & 0xffffff;
                const auto it = model.find(key);
                ASSERT_EQ(routes.find(key), it == model.end() ? nullptr : it->second)
                    << "step " << step << ", QPN " << key;
            }
    }
}

TEST(Router, DispatchRoutesByQpnKeepsWrIdsAndReportsUnknownQpns) {
    rcq::router<session> routes(3);
    session a{.qpn = 0x11}, b{.qpn = 0x22};
    ASSERT_EQ(routes.add(a.qpn, a), 0);
    ASSERT_EQ(routes.add(b.qpn, b), 0);
    const std::vector<ibv_wc> batch = {completion(0x11, 1), completion(0x22, 1),
                                       completion(0x33, 7), completion(0x11, ~0ull),
                                       completion(0x22, 42)};
    std::vector<ibv_wc> unknown;
    routes.dispatch(
        batch,
        [](session& s, const ibv_wc& wc) {
            EXPECT_EQ(wc.qp_num, s.qpn) << "routed to the wrong session";
            s.wr_ids.push_back(wc.wr_id);
        },
        [&](const ibv_wc& wc) { unknown.push_back(wc); });
    EXPECT_EQ(a.wr_ids, (std::vector<std::uint64_t>{1, ~0ull}));
    EXPECT_EQ(b.wr_ids, (std::vector<std::uint64_t>{1, 42}));
    ASSERT_EQ(unknown.size(), 1u);
    EXPECT_EQ(unknown[0].qp_num, 0x33u);
    EXPECT_EQ(unknown[0].wr_id, 7u);
    EXPECT_EQ(routes.unknown(), 1u);
}

} // namespace
