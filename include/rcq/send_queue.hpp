// rcq/send_queue.hpp - selective signaling that never overflows the send queue.
#pragma once

#include <rcq/config.hpp>
#include <rcq/error.hpp>
#include <rcq/extended.hpp>
#include <rcq/qp.hpp>
#include <rcq/wr.hpp>

#include <infiniband/verbs.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace rcq {

/// A chain of N requests must fit beside the longest run of unsignaled
/// requests (Every - 1) in a queue of Depth.
template <std::size_t N, std::size_t Every, std::size_t Depth>
concept batch_must_fit_in_the_send_queue = N + Every - 1 <= Depth;

/// Posts on an RTS QP with selective signaling: exactly one request in every
/// `Every` asks for a completion, and that completion retires it together
/// with the Every - 1 unsignaled requests before it. With at most `Depth`
/// requests outstanding (Depth <= the QP's max_send_wr, checked at
/// construction), the send queue cannot overflow: post() refuses with ENOSPC
/// instead, and the caller polls and calls retire() first. It cannot stall
/// either: when a post is refused, a signaled request is outstanding whose
/// completion makes room (hence the rule on chain lengths).
///
/// A chain that would cross a signaling boundary is posted in two parts, one
/// doorbell each, so that the boundary falls on a chain's end; chains whose
/// length divides Every, posted alone, never cross. Requests after the last
/// multiple of Every are never signaled: end a stream on a multiple of Every
/// to see every request complete.
///
/// `Api` chooses the post path at compile time: api::legacy (ibv_post_send)
/// or api::extended (ibv_wr_*; the QP needs qp_caps::send_ops).
///
/// Holds the QP by reference; not thread safe.
template <std::size_t Depth, std::size_t Every = 1, class Api = api::legacy>
class send_queue {
    static_assert(Every >= 1 && Every <= Depth,
                  "rcq::send_queue<Depth, Every>: signal at least once per Depth sends "
                  "(1 <= Every <= Depth), or the queue fills with sends nobody retires");

public:
    /// The send queue depth it assumes.
    static constexpr std::size_t depth = Depth;
    /// One send in `every` is signaled.
    static constexpr std::size_t every = Every;

    /// Takes the QP's limits (ibv_query_qp); throws rcq::error when they do not fit.
    explicit send_queue(qp<state::rts>& q)
        : qp_(q.get()), qp_ex_(std::same_as<Api, api::extended> ? extended_view(q.get()) : nullptr) {
        ibv_qp_attr attr{};
        ibv_qp_init_attr init{};
        if (int rc = ibv_query_qp(qp_, &attr, IBV_QP_CAP, &init); rc != 0)
            throw_error("ibv_query_qp(IBV_QP_CAP)", {}, rc);
        if (init.cap.max_send_wr < Depth)
            throw_invalid("rcq::send_queue<" + std::to_string(Depth) + ">: the QP's send queue holds " +
                              std::to_string(init.cap.max_send_wr) + " requests",
                          "create the QP with qp_caps::max_send_wr >= " + std::to_string(Depth));
        max_inline_ = init.cap.max_inline_data;
    }

    /// Posts one request, signaled if it is the Every-th since the last
    /// signaled one. Returns 0; ENOSPC when Depth requests are outstanding;
    /// EMSGSIZE for an inline send longer than the QP's max_inline_data
    /// (found when the provider refuses it, so that the check costs nothing
    /// on the way there); or the errno value of ibv_post_send.
    template <send_work_request W>
    [[nodiscard]] RCQ_ALWAYS_INLINE int post(W& w) noexcept {
        bool signaled;
        return post(w, signaled);
    }

    /// post(w), also telling whether `w` was the signaled one, so that the
    /// caller can poll for its completion without looking at the request.
    template <send_work_request W>
    [[nodiscard]] RCQ_ALWAYS_INLINE int post(W& w, bool& signaled) noexcept {
        if (outstanding_ == Depth) return ENOSPC;
        const std::size_t run = unsignaled_ + 1;
        signaled = run == Every;
        w.send_flags = (w.send_flags & ~unsigned(IBV_SEND_SIGNALED)) |
                       (signaled ? unsigned(IBV_SEND_SIGNALED) : 0u);
        unsignaled_ = run;
        ibv_send_wr* bad;
        if (int rc = submit(w, bad); rc != 0) [[unlikely]] {
            --unsignaled_;
            return refused(bad, rc);
        }
        ++outstanding_;
        if (signaled) unsignaled_ = 0;
        return 0;
    }

    /// Posts a chain with one doorbell (two when it crosses a signaling
    /// boundary; see the class comment). Returns as post(w) does; when the
    /// second part is refused, the first was posted, as with ibv_post_send.
    template <std::size_t N>
        requires batch_must_fit_in_the_send_queue<N, Every, Depth>
    [[nodiscard]] int post(wr_chain<N>& chain) noexcept {
        if (outstanding_ + N > Depth) return ENOSPC;
        for (std::size_t start = 0; start < N;) {
            const std::size_t room = Every - unsignaled_;
            const std::size_t n = std::min(room, N - start);
            const bool signal = n == room;
            for (std::size_t i = start; i < start + n; ++i)
                chain[i].send_flags &= ~unsigned(IBV_SEND_SIGNALED);
            ibv_send_wr& last = chain[start + n - 1];
            if (signal) last.send_flags |= IBV_SEND_SIGNALED;
            ibv_send_wr* const rest = std::exchange(last.next, nullptr);
            ibv_send_wr* bad;
            const int rc = submit(chain[start], bad);
            last.next = rest;
            if (rc != 0) [[unlikely]]
                return refused(bad, rc);
            outstanding_ += n;
            unsignaled_ = signal ? 0 : unsignaled_ + n;
            start += n;
        }
        return 0;
    }

    /// Call once per successful send completion polled from the send CQ:
    /// frees the slots of the signaled request and of the Every - 1 before it.
    RCQ_ALWAYS_INLINE void retire() noexcept { outstanding_ -= Every; }

    /// Sends posted and not yet retired.
    std::size_t outstanding() const noexcept { return outstanding_; }
    /// The QP's inline limit in bytes.
    std::uint32_t max_inline() const noexcept { return max_inline_; }

private:
    // Posts the chain from `first`; on failure `bad` is the first request
    // not posted (the whole chain with the extended API, which is all or
    // nothing).
    RCQ_ALWAYS_INLINE int submit(ibv_send_wr& first, ibv_send_wr*& bad) noexcept {
        if constexpr (std::same_as<Api, api::extended>) {
            bad = &first;
            return detail::post_ex(qp_ex_, first);
        } else {
            return ibv_post_send(qp_, &first, &bad);
        }
    }

    // The provider refused the post (nothing was counted yet): name an inline
    // request longer than the QP takes as such.
    [[gnu::noinline]] int refused(const ibv_send_wr* bad, int rc) const noexcept {
        for (const ibv_send_wr* w = bad; w != nullptr; w = w->next) {
            std::uint32_t length = 0;
            for (int i = 0; i < w->num_sge; ++i) length += w->sg_list[i].length;
            if ((w->send_flags & IBV_SEND_INLINE) && length > max_inline_) return EMSGSIZE;
        }
        return rc;
    }

    ibv_qp* qp_;
    ibv_qp_ex* qp_ex_; // null with api::legacy
    std::uint32_t max_inline_ = 0;
    std::size_t outstanding_ = 0; // posted and not yet retired
    std::size_t unsignaled_ = 0;  // posted since the last signaled request
};

} // namespace rcq
