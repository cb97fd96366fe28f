// rcq/poll/adaptive.hpp - spin for a while, then block.
#pragma once

#include <rcq/config.hpp>

#include <rcq/category.hpp>
#include <rcq/config.hpp>
#include <rcq/cq.hpp>
#include <rcq/deadline.hpp>
#include <rcq/poll/blocking.hpp>

#include <infiniband/verbs.h>

#include <span>

namespace rcq::poll {

/// Polls the CQ up to `Spins` times, then sleeps on a completion channel as
/// rcq::poll::blocking does: spinning's latency when completions come
/// quickly, blocking's idle cost when they do not.
template <unsigned Spins = 4096>
class adaptive {
    static_assert(Spins > 0, "rcq::poll::adaptive<Spins>: spin at least once, or use poll::blocking");

public:
    /// Marks this type as a poll policy.
    using rcq_category = category::poll;

    /// Creates the completion channel it blocks on.
    explicit adaptive(ibv_context* ctx) : blocking_(ctx) {}

    /// A CQ bound to the completion channel.
    cq make_cq(ibv_context* ctx, int depth) { return blocking_.make_cq(ctx, depth); }

    /// Returns how many completions arrived (> 0), 0 when the deadline passed
    /// first, or -errno when waiting failed.
    template <class Cq = cq>
    [[nodiscard]] RCQ_ALWAYS_INLINE int wait(const Cq& c, std::span<ibv_wc> out,
                                             const deadline& until) noexcept {
        int n;
        unsigned left = Spins;
        do {
            n = c.poll(out);
        } while (n == 0 && --left != 0);
        if (n == 0) [[unlikely]]
            n = blocking_.sleep_then_poll(c, out, until);
        return n;
    }

    /// One line for the connection's narration.
    static const char* describe() noexcept { return "adaptive: spin, then block"; }

    /// Polls before sleeping (an rcq::async_cq polls this many times from
    /// posted handlers before it waits for the channel).
    static constexpr unsigned spins = Spins;
    /// The completion channel its CQs are bound to.
    ibv_comp_channel* channel() const noexcept { return blocking_.channel(); }

private:
    blocking blocking_;
};

} // namespace rcq::poll
