// rcq/cq.hpp - a completion queue.
#pragma once

#include <rcq/config.hpp>
#include <rcq/detail/handle.hpp>
#include <rcq/device.hpp>
#include <rcq/error.hpp>

#include <infiniband/verbs.h>

#include <span>

namespace rcq {

namespace detail {
/// A failed ibv_create_cq of `depth` entries: throws rcq::error with errno.
[[noreturn]] RCQ_DECL void throw_create_cq_failed(int depth);
} // namespace detail

/// A completion queue (ibv_create_cq). Move-only, the size of a pointer.
/// Must outlive the QPs that use it. Polling one CQ from several threads at
/// once needs the caller's own lock, as with verbs.
class cq {
public:
    /// A CQ of at least `depth` entries, optionally bound to a completion
    /// channel for blocking waits.
    cq(ibv_context* ctx, int depth, ibv_comp_channel* channel = nullptr, int comp_vector = 0)
        : cq_(ibv_create_cq(ctx, depth, nullptr, channel, comp_vector)) {
        if (!cq_) detail::throw_create_cq_failed(depth);
    }
    /// Adopts a CQ created elsewhere; rcq destroys it.
    explicit cq(ibv_cq* raw) noexcept : cq_(raw) {}

    /// The raw CQ.
    ibv_cq* get() const noexcept { return cq_.get(); }
    /// The raw CQ, for verbs calls.
    operator ibv_cq*() const& noexcept { return cq_.get(); }
    /// Not from a temporary: the object would be destroyed at the end of the
    /// statement, leaving the pointer dangling. Name the owner in a variable.
    operator ibv_cq*() && = delete;

    /// Takes up to `out.size()` completions without blocking. Returns how many
    /// (0 when none are ready) or a negative value when polling failed. This
    /// is ibv_poll_cq and nothing else.
    [[nodiscard]] RCQ_ALWAYS_INLINE int poll(std::span<ibv_wc> out) const noexcept {
        return ibv_poll_cq(cq_.get(), static_cast<int>(out.size()), out.data());
    }

private:
    detail::handle<ibv_cq, &ibv_destroy_cq> cq_;
};

static_assert(sizeof(cq) == sizeof(ibv_cq*));

/// A CQ meant for send completions only. A QP made with separate send and
/// receive CQs takes them as these two types, so they cannot be swapped by
/// accident; a QP given one plain rcq::cq shares it on purpose.
class send_cq : public cq {
public:
    using cq::cq;
};

/// A CQ meant for receive completions only; see send_cq.
class recv_cq : public cq {
public:
    using cq::cq;
};

} // namespace rcq

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/cq.ipp>
#endif
