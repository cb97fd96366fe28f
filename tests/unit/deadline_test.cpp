// rcq::deadline at the extremes of what a user can pass: "no time limit"
// (the largest duration of any type) saturates, zero and negative durations
// have already passed, and none of them overflows (UBSan checks that too).
#include <rcq/deadline.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>

namespace {

using namespace std::chrono_literals;
using rcq::deadline;
using clock_type = deadline::clock;

template <class Duration>
void expect_saturated(Duration d) {
    auto dl = deadline::after(d);
    EXPECT_EQ(dl.at(), clock_type::time_point::max());
    EXPECT_FALSE(dl.expired());
    EXPECT_EQ(dl.remaining_ms(), std::numeric_limits<int>::max());
}

TEST(Deadline, TheLargestDurationsSaturate) {
    expect_saturated(std::chrono::milliseconds::max());
    expect_saturated(std::chrono::nanoseconds::max());
    expect_saturated(std::chrono::hours::max());
    expect_saturated(std::chrono::duration<std::uint64_t, std::milli>::max());
    expect_saturated(std::chrono::duration<double>(1e300));
    expect_saturated(std::chrono::duration<double>(std::numeric_limits<double>::infinity()));
    // 300 years is more than the clock can hold after boot.
    expect_saturated(std::chrono::hours(24 * 365 * 300));
}

TEST(Deadline, ZeroAndNegativeDurationsHaveAlreadyPassed) {
    for (auto d : {std::chrono::milliseconds::zero(), std::chrono::milliseconds{-1},
                   std::chrono::milliseconds::min()}) {
        auto dl = deadline::after(d);
        EXPECT_TRUE(dl.expired());
        EXPECT_EQ(dl.remaining_ms(), 0);
    }
    EXPECT_TRUE(deadline::after(std::chrono::nanoseconds::min()).expired());
    EXPECT_TRUE(deadline::after(std::chrono::duration<double>(-1e300)).expired());
}

TEST(Deadline, OrdinaryDurationsAreExact) {
    auto before = clock_type::now();
    auto dl = deadline::after(10s);
    auto after = clock_type::now();
    EXPECT_GE(dl.at(), before + 10s);
    EXPECT_LE(dl.at(), after + 10s);
    // 100 years fits the clock and is not saturated.
    auto far = deadline::after(std::chrono::hours(24 * 365 * 100));
    EXPECT_LT(far.at(), clock_type::time_point::max());
    EXPECT_GE(far.at(), before + std::chrono::hours(24 * 365 * 100));
}

TEST(Deadline, RemainingIsClampedForPoll) {
    EXPECT_EQ(deadline::after(std::chrono::hours(24 * 365)).remaining_ms(),
              std::numeric_limits<int>::max());
    auto left = deadline::after(2s).remaining_ms();
    EXPECT_GT(left, 1000);
    EXPECT_LE(left, 2000);
}

TEST(Deadline, BudgetText) {
    EXPECT_EQ(rcq::detail::budget_text(30s), "30 s");
    EXPECT_EQ(rcq::detail::budget_text(1500ms), "1500 ms");
    EXPECT_EQ(rcq::detail::budget_text(std::chrono::milliseconds::max()), "no time limit");
}

} // namespace
