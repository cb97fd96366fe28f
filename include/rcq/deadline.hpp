// rcq/deadline.hpp - a point in time by which a blocking step must be done.
#pragma once

#include <rcq/config.hpp>
#include <chrono>
#include <string>

namespace rcq {

/// Every blocking step in rcq (accept, connect, read, write, waiting for a
/// completion) takes a deadline rather than a timeout, so that a sequence of
/// steps shares one budget instead of each restarting the clock.
class deadline {
public:
    /// The clock deadlines are measured on (monotonic).
    using clock = std::chrono::steady_clock;

    /// A deadline at the time point `at`.
    explicit deadline(clock::time_point at) noexcept : at_(at) {}

    /// A deadline `d` from now. Saturates: a `d` too long for the clock
    /// (`std::chrono::milliseconds::max()`, say, for "no time limit") gives
    /// the latest time the clock can hold, and a zero or negative `d` (down
    /// to `milliseconds::min()`) a deadline that has already passed. Never overflows.
    template <class Rep, class Period>
    static deadline after(std::chrono::duration<Rep, Period> d) noexcept {
        const auto now = clock::now();
        if (d <= d.zero()) return deadline(now);
        // Compared in floating point, which cannot overflow; a margin of one
        // second keeps rounding from letting an overflowing `d` through, and
        // any `d` below it converts exactly.
        using seconds = std::chrono::duration<double>;
        const auto room = clock::time_point::max() - now;
        if (seconds(d) >= seconds(room) - seconds(1)) return deadline(clock::time_point::max());
        return deadline(now + std::chrono::duration_cast<clock::duration>(d));
    }

    /// The time point.
    clock::time_point at() const noexcept { return at_; }
    /// Whether the time point has passed.
    bool expired() const noexcept { return clock::now() >= at_; }

    /// Milliseconds left, rounded up and clamped to [0, INT_MAX], as poll(2) wants.
    int remaining_ms() const noexcept {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(at_ - clock::now()).count();
        return left <= 0 ? 0 : left >= 0x7fffffff ? 0x7fffffff : static_cast<int>(left);
    }

private:
    clock::time_point at_;
};

namespace detail {

/// A user's time budget for messages: "30 s", "500 ms", or "no time limit"
/// for durations of a year or more (`milliseconds::max()`).
RCQ_DECL std::string budget_text(std::chrono::milliseconds budget);

} // namespace detail

} // namespace rcq

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/deadline.ipp>
#endif
