// rcq/teardown.hpp - tearing down one QP among many that share a CQ.
#pragma once

#include <rcq/config.hpp>

#include <rcq/cq.hpp>
#include <rcq/deadline.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/error.hpp>
#include <rcq/qp.hpp>
#include <rcq/router.hpp>

#include <infiniband/verbs.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace rcq {

/// What rcq::tear_down met while draining.
struct teardown_result {
    /// Completions of the torn-down QP handed to its target (its flushed
    /// work requests, and any that completed before the QP went to ERROR).
    std::size_t own = 0;
    /// Completions of other QPs routed to their targets meanwhile.
    std::size_t others = 0;
    /// Completions of QPs the router does not know, handed to on_unknown.
    std::size_t unknown = 0;
};

/// The wr_id of the marker SEND tear_down posts after the QP went to ERROR;
/// reserved on that QP while it is torn down.
inline constexpr std::uint64_t drain_send_wr_id = 0xffff'ffff'ffff'fff0u;
/// The wr_id of the marker RECV (a QP with its own receive queue only).
inline constexpr std::uint64_t drain_recv_wr_id = 0xffff'ffff'ffff'fff1u;

/// Tears down QP `q`, one of many on CQ `c`, while the others go on:
///
/// 1. posts a marker RECV when the QP has its own receive queue, then moves
///    the QP to ERROR. Its outstanding send work requests, and the receives
///    of its own receive queue, then complete with IBV_WC_WR_FLUSH_ERR,
///    unsignaled ones included. Such a completion carries only wr_id,
///    status and qp_num (its opcode is not valid);
/// 2. posts a marker SEND, flushed too. The SQ and the RQ each complete in
///    order, so each marker is its queue's last completion (the kernel's
///    ib_drain_qp works this way);
/// 3. polls `c` with poll policy `p` until the markers came back, routing
///    every completion met through `r` meanwhile: those of `q` (flushes or
///    late successes) to its target, those of other QPs to theirs, those of
///    unknown QPs to on_unknown. The markers themselves are not handed on;
/// 4. removes `q` from `r` (it may have been removed already) and destroys it.
///
/// A QP attached to an SRQ owns no receives: going to ERROR does not flush
/// the SRQ's receives, which stay posted for the other QPs. At most the
/// receive the QP was filling when it failed is flushed, with that SRQ
/// receive's wr_id. Verbs reports IBV_EVENT_QP_LAST_WQE_REACHED (an async
/// event on the context) once no further SRQ receive will complete on the
/// QP; tear_down does not read async events (they belong to the whole
/// context), so a program that must account for every SRQ receive waits for
/// that event before calling it. Soft-RoCE (rxe) flushes no SRQ receive.
///
/// Bounded: throws rcq::error (ETIMEDOUT) when the markers are not back
/// within `timeout`, EIO when polling fails, EINVAL for an empty handle; the
/// QP is removed from `r` and destroyed in every case (tear_down takes it
/// over first). Completions of the other QPs met on the way
/// have been routed either way.
template <class State, class Target, class Poll, class OnCompletion, class OnUnknown>
teardown_result tear_down(qp<State>&& q, router<Target>& r, Poll& p, const cq& c,
                          OnCompletion&& on_completion, OnUnknown&& on_unknown,
                          std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    // Taken over at once, so that every way out destroys the QP, a throw
    // before it reached ERROR included.
    qp<State> owned = std::move(q);
    if (owned.get() == nullptr)
        throw_invalid("tear_down of an empty rcq::qp handle (it was moved from)",
                      "pass the handle the last transition returned, or peer.release_qp()");
    const std::uint32_t qpn = owned.qp_num();
    const bool own_rq = owned.get()->srq == nullptr;
    struct unroute { // the QP leaves the router on every path out
        router<Target>& r;
        std::uint32_t qpn;
        ~unroute() { (void)r.remove(qpn); }
    } leave{r, qpn};
    // The receive marker goes in before ERROR: a receive posted on a QP in
    // ERROR is flushed by the hardware, but some providers (rxe) look at
    // their receive queue only when a packet or a state change wakes them.
    // Posted in RTS, it is flushed with the rest; should a message still
    // take it first, its completion (an error: it has no room) comes after
    // every earlier receive's all the same.
    bool recv_back = !own_rq;
    if (own_rq) {
        ibv_recv_wr recv{};
        recv.wr_id = drain_recv_wr_id;
        ibv_recv_wr* bad_recv = nullptr;
        if (const int rc = ibv_post_recv(owned.get(), &recv, &bad_recv); rc != 0)
            throw_error("tear_down: posting the receive drain marker on QPN 0x" + detail::hex(qpn),
                        "the receive queue may be full: its marker needs one free entry", rc);
    }
    auto failed = std::move(owned).to_error();

    // The send marker goes in after ERROR, so that it is flushed, never sent.
    ibv_send_wr send{};
    send.wr_id = drain_send_wr_id;
    send.opcode = IBV_WR_SEND;
    send.send_flags = IBV_SEND_SIGNALED;
    ibv_send_wr* bad_send = nullptr;
    if (const int rc = ibv_post_send(failed.get(), &send, &bad_send); rc != 0)
        throw_error("tear_down: posting the drain marker on QPN 0x" + detail::hex(qpn),
                    "the provider refused a send on a QP in ERROR", rc);
    bool send_back = false;
    teardown_result seen;
    // The markers are recognised whether or not the QP is still routed.
    auto marker = [&](const ibv_wc& wc) {
        if ((wc.qp_num & 0xffffff) != (qpn & 0xffffff)) return false;
        if (wc.wr_id == drain_send_wr_id && !send_back) return send_back = true;
        if (wc.wr_id == drain_recv_wr_id && !recv_back) return recv_back = true;
        return false;
    };
    auto routed = [&](Target& t, const ibv_wc& wc) {
        if (marker(wc)) return;
        ++((wc.qp_num & 0xffffff) == (qpn & 0xffffff) ? seen.own : seen.others);
        on_completion(t, wc);
    };
    auto stray = [&](const ibv_wc& wc) {
        if (marker(wc)) return;
        ++seen.unknown;
        on_unknown(wc);
    };
    const deadline until = deadline::after(timeout);
    std::array<ibv_wc, 16> batch;
    while (!send_back || !recv_back) {
        const int n = r.wait(p, c, std::span<ibv_wc>(batch), until, routed, stray);
        if (n < 0)
            throw_error("tear_down of QPN 0x" + detail::hex(qpn) + ": polling the CQ failed (result " +
                            std::to_string(n) + ")",
                        "a CQ that overran (cq_depth too small) is one cause", EIO);
        if (n == 0 && until.expired())
            throw_error("tear_down of QPN 0x" + detail::hex(qpn) + ": its flushed work requests "
                            "did not come back within " + std::to_string(timeout.count()) + " ms",
                        "the CQ may be one this QP does not complete on, or the provider does "
                        "not flush a QP in ERROR",
                        ETIMEDOUT);
    }
    return seen;
}

} // namespace rcq
