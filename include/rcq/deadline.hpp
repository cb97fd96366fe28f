// rcq/deadline.hpp - a point in time by which a blocking step must be done.
#pragma once

#include <algorithm>
#include <chrono>

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

    /// A deadline `d` from now.
    template <class Rep, class Period>
    static deadline after(std::chrono::duration<Rep, Period> d) noexcept {
        return deadline(clock::now() + std::chrono::duration_cast<clock::duration>(d));
    }

    /// The time point.
    clock::time_point at() const noexcept { return at_; }
    /// Whether the time point has passed.
    bool expired() const noexcept { return clock::now() >= at_; }

    /// Milliseconds left, rounded up and clamped to [0, INT_MAX], as poll(2) wants.
    int remaining_ms() const noexcept {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(at_ - clock::now()).count();
        return static_cast<int>(std::clamp<long long>(left, 0, 0x7fffffff));
    }

private:
    clock::time_point at_;
};

} // namespace rcq
