// rcq/send_queue.hpp - selective signaling that never overflows the send queue.
#pragma once

#include <rcq/config.hpp>
#include <rcq/detail/dependent_false.hpp>
#include <rcq/detail/misuse.hpp>
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
/// Owns the QP it posts on, so that no other handle can move it to ERROR or
/// destroy it behind the queue's back, and no second queue can count the
/// same QP: build it with send_queue sq(std::move(q)); post receives with
/// sq.post_recv(); take the QP back with std::move(sq).release() or move it
/// to ERROR with std::move(sq).to_error(). Move-only; not thread safe.
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

    /// Takes the QP. Throws rcq::error, leaving `q` with the caller, when
    /// its send queue is shorter than Depth, or when it signals every request
    /// (qp_caps::signal_all) while Every > 1: each completion would then
    /// retire one request, not Every, and the count would go wrong.
    explicit send_queue(qp<state::rts>&& q)
        : max_inline_(checked(q)),
          qp_ex_(std::same_as<Api, api::extended> ? extended_view(q.get()) : nullptr),
          qp_(std::move(q)) {}

    /// The queue takes the QP: write send_queue sq(std::move(q)).
    explicit send_queue(qp<state::rts>& q) : send_queue(lvalue_rule(q)) {}

    /// Moving leaves `other` empty: posting on it is a misuse (caught with
    /// RCQ_DEBUG_CHECKS on).
    send_queue(send_queue&& other) noexcept
        : max_inline_(other.max_inline_),
          qp_ex_(std::exchange(other.qp_ex_, nullptr)),
          qp_(std::move(other.qp_)),
          outstanding_(std::exchange(other.outstanding_, 0)),
          unsignaled_(std::exchange(other.unsignaled_, 0)) {}
    send_queue& operator=(send_queue&&) = delete;

    /// The QP, to read (qp_num(), get()); post receives with post_recv().
    const qp<state::rts>& queue_pair() const noexcept { return qp_; }

    /// Gives the QP back (requests still outstanding stay on it).
    [[nodiscard]] qp<state::rts> release() && noexcept {
        qp_ex_ = nullptr;
        return std::move(qp_);
    }

    /// Moves the QP to ERROR (outstanding requests complete flushed) and
    /// hands it over; the queue is left empty.
    [[nodiscard]] qp<state::error> to_error() && {
        qp_ex_ = nullptr;
        return std::move(qp_).to_error();
    }

    /// Posts receives on the QP: exactly ibv_post_recv.
    [[nodiscard]] RCQ_ALWAYS_INLINE int post_recv(ibv_recv_wr& wr) noexcept {
        return qp_.post_recv(wr);
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
            return refused(bad, rc); // one request: nothing was posted
        }
        ++outstanding_;
        if (signaled) unsignaled_ = 0;
        return 0;
    }

    /// Posts a chain with one doorbell (two when it crosses a signaling
    /// boundary; see the class comment). Returns as post(w) does. When the
    /// provider refuses a request in the middle, the ones before it were
    /// posted, as with ibv_post_send: they are counted as outstanding, and
    /// the caller reposts from the first one not posted.
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
            if (rc != 0) [[unlikely]] {
                // The requests before `bad` were posted, all unsignaled (only
                // the part's last is signaled, and it is at or after `bad`).
                const std::size_t posted = count_before(chain[start], bad);
                outstanding_ += posted;
                unsignaled_ += posted;
                return refused(bad, rc);
            }
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
            RCQ_DEBUG_CHECK(qp_ex_ != nullptr,
                            "post on an empty rcq::send_queue: it was moved from or gave its QP "
                            "away (release(), to_error()); post on the queue that holds the QP");
            bad = &first;
            return detail::post_ex(qp_ex_, first);
        } else {
            return qp_.post_send(first, bad);
        }
    }

    static qp<state::rts>&& lvalue_rule(qp<state::rts>& q) noexcept {
        static_assert(detail::dependent_false<Api>,
                      "rcq::send_queue: send_queue_takes_the_qp: it owns the QP it counts for; "
                      "write send_queue sq(std::move(q)) and get it back with "
                      "std::move(sq).release()");
        return std::move(q);
    }

    // The QP's max_inline_data, once its queue is known to fit Depth and its
    // signaling to fit Every.
    static std::uint32_t checked(const qp<state::rts>& q) {
        ibv_qp_attr attr{};
        ibv_qp_init_attr init{};
        if (int rc = ibv_query_qp(q.get(), &attr, IBV_QP_CAP, &init); rc != 0)
            throw_error("ibv_query_qp(IBV_QP_CAP)", {}, rc);
        if (init.cap.max_send_wr < Depth)
            throw_invalid("rcq::send_queue<" + std::to_string(Depth) + ">: the QP's send queue holds " +
                              std::to_string(init.cap.max_send_wr) + " requests",
                          "create the QP with qp_caps::max_send_wr >= " + std::to_string(Depth));
        if (Every > 1 && init.sq_sig_all != 0)
            throw_invalid("rcq::send_queue<" + std::to_string(Depth) + ", " + std::to_string(Every) +
                              ">: the QP signals every request (qp_caps::signal_all), so one "
                              "completion cannot retire " + std::to_string(Every),
                          "use send_queue<Depth, 1> on it, or create the QP without signal_all");
        return init.cap.max_inline_data;
    }

    // How many requests of the chain from `first` come before `bad` (all of
    // them when `bad` is not in it).
    [[gnu::noinline]] static std::size_t count_before(const ibv_send_wr& first,
                                                      const ibv_send_wr* bad) noexcept {
        std::size_t n = 0;
        for (const ibv_send_wr* w = &first; w != nullptr && w != bad; w = w->next) ++n;
        return n;
    }

    // The provider refused a request: name an inline
    // request longer than the QP takes as such.
    [[gnu::noinline]] int refused(const ibv_send_wr* bad, int rc) const noexcept {
        for (const ibv_send_wr* w = bad; w != nullptr; w = w->next) {
            std::uint32_t length = 0;
            for (int i = 0; i < w->num_sge; ++i) length += w->sg_list[i].length;
            if ((w->send_flags & IBV_SEND_INLINE) && length > max_inline_) return EMSGSIZE;
        }
        return rc;
    }

    std::uint32_t max_inline_ = 0;
    ibv_qp_ex* qp_ex_; // null with api::legacy
    qp<state::rts> qp_;
    std::size_t outstanding_ = 0; // posted and not yet retired
    std::size_t unsignaled_ = 0;  // posted since the last signaled request
};

} // namespace rcq
