// rcq/poll/busy.hpp - wait for completions by spinning on the CQ.
#pragma once

#include <rcq/config.hpp>
#include <rcq/cq.hpp>
#include <rcq/deadline.hpp>
#include <rcq/device.hpp>
#include <rcq/category.hpp>

#include <infiniband/verbs.h>

#include <span>

namespace rcq::poll {

/// Spins on ibv_poll_cq until a completion arrives or the deadline passes.
/// Lowest latency, one core at 100% while waiting. The clock is read once
/// every 1024 empty polls, so an idle spin costs one poll_cq call.
struct busy {
    /// Marks this type as a poll policy.
    using rcq_category = category::poll;

    /// Needs nothing from the device.
    explicit busy(ibv_context*) noexcept {}

    /// One line for the connection's narration.
    static const char* describe() noexcept { return "busy polling"; }

    /// A plain CQ: spinning needs no completion channel.
    cq make_cq(ibv_context* ctx, int depth) { return cq(ctx, depth); }

    /// Waits for up to `out.size()` completions. Returns how many arrived
    /// (> 0), 0 when the deadline passed first, or < 0 when polling failed.
    template <class Cq = cq>
    [[nodiscard]] RCQ_ALWAYS_INLINE int wait(const Cq& c, std::span<ibv_wc> out,
                                             const deadline& until) noexcept {
        for (unsigned spins = 0;; ++spins) {
            if (int n = c.poll(out); n != 0) return n;
            if (spins % 1024 == 1023 && until.expired()) return 0;
        }
    }
};

} // namespace rcq::poll
