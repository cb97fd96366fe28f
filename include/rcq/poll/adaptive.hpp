// rcq/poll/adaptive.hpp - spin for a while, then block.
#pragma once

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
public:
    using rcq_category = category::poll;

    explicit adaptive(ibv_context* ctx) : blocking_(ctx) {}

    cq make_cq(ibv_context* ctx, int depth) { return blocking_.make_cq(ctx, depth); }

    /// Returns how many completions arrived (> 0), 0 when the deadline passed
    /// first, or -errno when waiting failed.
    template <class Cq = cq>
    [[nodiscard]] RCQ_ALWAYS_INLINE int wait(const Cq& c, std::span<ibv_wc> out,
                                             const deadline& until) noexcept {
        for (unsigned i = 0; i < Spins; ++i)
            if (int n = c.poll(out); n != 0) return n;
        return blocking_.wait(c, out, until);
    }

    static const char* describe() noexcept { return "adaptive: spin, then block"; }

private:
    blocking blocking_;
};

} // namespace rcq::poll
