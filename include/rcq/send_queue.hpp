// rcq/send_queue.hpp - selective signaling that never overflows the send queue.
#pragma once

#include <rcq/config.hpp>
#include <rcq/error.hpp>
#include <rcq/extended.hpp>
#include <rcq/qp.hpp>
#include <rcq/wr.hpp>

#include <infiniband/verbs.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>

namespace rcq {

template <std::size_t N, std::size_t Depth>
concept batch_must_fit_in_the_send_queue = N <= Depth;

template <std::size_t N, std::size_t Every>
concept batch_must_not_be_longer_than_the_signaling_interval = N <= Every;

/// Posts on an RTS QP with selective signaling: only one send in every
/// `Every` asks for a completion, and that completion retires it together
/// with the unsignaled sends before it. With at most `Depth` requests
/// outstanding (Depth <= the QP's max_send_wr, checked at construction),
/// the send queue cannot overflow: post() refuses with ENOSPC instead, and
/// the caller polls and calls retire() first.
///
/// A request is also signaled when it leaves fewer than Every free slots,
/// and chains are at most Every long: so whenever a post is refused, a
/// signaled request is outstanding whose completion will make room, and the
/// queue cannot stall on unsignaled requests that nothing retires.
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
    static constexpr std::size_t depth = Depth;
    static constexpr std::size_t every = Every;

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
    /// EMSGSIZE for an inline send longer than the QP's max_inline_data; or
    /// the errno value of ibv_post_send.
    template <send_work_request W>
    [[nodiscard]] RCQ_ALWAYS_INLINE int post(W& w) noexcept {
        if (outstanding_ == Depth) return ENOSPC;
        if ((w.send_flags & IBV_SEND_INLINE) && w.sg_list->length > max_inline_) return EMSGSIZE;
        const bool signal = ++unsignaled_ == Every || Depth - (outstanding_ + 1) < Every;
        w.send_flags = signal ? (w.send_flags | IBV_SEND_SIGNALED)
                              : (w.send_flags & ~unsigned(IBV_SEND_SIGNALED));
        if (int rc = submit(w); rc != 0) {
            --unsignaled_;
            return rc;
        }
        ++outstanding_;
        if (signal) close_batch();
        return 0;
    }

    /// Posts a chain with one doorbell; its last request is signaled when the
    /// chain reaches or passes the next multiple of Every.
    template <std::size_t N>
        requires batch_must_fit_in_the_send_queue<N, Depth> &&
                 batch_must_not_be_longer_than_the_signaling_interval<N, Every>
    [[nodiscard]] RCQ_ALWAYS_INLINE int post(wr_chain<N>& chain) noexcept {
        if (outstanding_ + N > Depth) return ENOSPC;
        for (std::size_t i = 0; i + 1 < N; ++i) chain[i].send_flags &= ~unsigned(IBV_SEND_SIGNALED);
        const bool signal = unsignaled_ + N >= Every || Depth - (outstanding_ + N) < Every;
        ibv_send_wr& last = chain.back();
        last.send_flags = signal ? (last.send_flags | IBV_SEND_SIGNALED)
                                 : (last.send_flags & ~unsigned(IBV_SEND_SIGNALED));
        if (int rc = submit(chain.front()); rc != 0) return rc;
        unsignaled_ += N;
        outstanding_ += N;
        if (signal) close_batch();
        return 0;
    }

    /// Call once per successful send completion polled from the send CQ:
    /// frees the slots of the signaled request and of those before it.
    RCQ_ALWAYS_INLINE void retire() noexcept {
        outstanding_ -= batches_[head_];
        head_ = (head_ + 1) % Depth;
    }

    std::size_t outstanding() const noexcept { return outstanding_; }
    std::uint32_t max_inline() const noexcept { return max_inline_; }

private:
    RCQ_ALWAYS_INLINE int submit(ibv_send_wr& first) noexcept {
        if constexpr (std::same_as<Api, api::extended>) {
            return detail::post_ex(qp_ex_, first);
        } else {
            ibv_send_wr* bad;
            return ibv_post_send(qp_, &first, &bad);
        }
    }

    // Each signaled request closes a batch: the sends its completion retires.
    void close_batch() noexcept {
        batches_[tail_] = unsignaled_;
        tail_ = (tail_ + 1) % Depth;
        unsignaled_ = 0;
    }

    ibv_qp* qp_;
    ibv_qp_ex* qp_ex_; // null with api::legacy
    std::uint32_t max_inline_ = 0;
    std::size_t outstanding_ = 0; // posted and not yet retired
    std::size_t unsignaled_ = 0;  // posted since the last signaled request
    std::size_t head_ = 0, tail_ = 0;
    std::array<std::size_t, Depth> batches_{};
};

} // namespace rcq
