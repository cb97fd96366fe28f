// The checks of misuse that only debug builds make (RCQ_DEBUG_CHECKS=1, set
// for this program whatever the build type): each stops the program with a
// message that names the mistake.
#include <rcq/rcq.hpp>

#include <gtest/gtest.h>

#include <cerrno>
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

int busy_release(int*) { return EBUSY; }

TEST(DebugChecks, AFailedReleaseStops) {
    int object = 0;
    using owner = rcq::detail::handle<int, &busy_release>;
    EXPECT_DEATH({ owner h(&object); }, "rcq: releasing a verbs object failed: Device or resource busy");
}

} // namespace
