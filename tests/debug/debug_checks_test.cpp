// The checks of misuse that only debug builds make (RCQ_DEBUG_CHECKS=1, set
// for this program whatever the build type): each stops the program with a
// message that names the mistake.
#include <rcq/rcq.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

static_assert(RCQ_DEBUG_CHECKS == 1, "this program tests the debug checks: build it with them");

namespace {

TEST(DebugChecks, PostingOnAMovedFromQpHandleStopsWithTheMistakeNamed) {
    auto q = rcq::qp<rcq::state::rts>::adopt_unchecked(nullptr);
    auto moved = std::move(q);
    ibv_sge sge{};
    rcq::send_op w(sge, 1);
    rcq::recv_wr r(sge, 2);
    // NOLINTNEXTLINE(bugprone-use-after-move): the mistake under test
    EXPECT_DEATH((void)q.post_send(w), "post on an empty rcq::qp handle: it was moved from");
    // NOLINTNEXTLINE(bugprone-use-after-move): the mistake under test
    EXPECT_DEATH((void)q.post_recv(r), "post on the handle the transition returned");
    (void)std::move(moved).release();
}

TEST(DebugChecks, AskingAMovedFromQpHandleItsNumberStops) {
    auto q = rcq::qp<rcq::state::init>::adopt_unchecked(nullptr);
    auto moved = std::move(q);
    // NOLINTNEXTLINE(bugprone-use-after-move): the mistake under test
    EXPECT_DEATH((void)q.qp_num(), "qp_num\\(\\) of an empty rcq::qp handle: it was moved from");
    (void)std::move(moved).release();
}

struct session {};

TEST(DebugChecks, ALookupInAMovedFromRouterStops) {
    rcq::router<session> routes(2);
    rcq::router<session> moved = std::move(routes);
    // NOLINTNEXTLINE(bugprone-use-after-move): the mistake under test
    EXPECT_DEATH((void)routes.find(1), "lookup in a moved-from rcq::router");
    ibv_wc wc{};
    // NOLINTNEXTLINE(bugprone-use-after-move): the mistake under test
    EXPECT_DEATH(routes.dispatch(std::span<const ibv_wc>(&wc, 1), [](session&, const ibv_wc&) {},
                                 [](const ibv_wc&) {}),
                 "lookup in a moved-from rcq::router");
    EXPECT_EQ(moved.find(1), nullptr);
}

// A region as rcq::local() takes it: 64 bytes with a made-up key.
struct region {
    std::byte* data;
    std::span<std::byte> bytes() const noexcept { return {data, 64}; }
    std::uint32_t lkey() const noexcept { return 1; }
};

TEST(DebugChecks, ALocalElementPastItsRegionStops) {
    std::byte memory[64];
    const region r{memory};
    EXPECT_EQ(rcq::local(r, 32, 32).length, 32u);
    EXPECT_DEATH((void)rcq::local(r, 32, 33), "offset \\+ length reaches past the registered region");
    EXPECT_DEATH((void)rcq::local(r, 65, 0), "reaches past the registered region");
}

TEST(DebugChecks, AChainIndexPastTheEndStops) {
    rcq::wr_chain<4> chain;
    const ibv_sge sge{};
    EXPECT_DEATH(chain.set(4, rcq::send_op(sge, 1)), "i is past the chain's end");
    EXPECT_DEATH((void)chain[4], "i is past the chain's end");
}

int busy_release(int*) { return EBUSY; }

TEST(DebugChecks, AFailedReleaseStops) {
    int object = 0;
    using owner = rcq::detail::handle<int, &busy_release>;
    EXPECT_DEATH({ owner h(&object); }, "rcq: releasing a verbs object failed: Device or resource busy");
}

} // namespace
