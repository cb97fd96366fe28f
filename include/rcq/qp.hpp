// rcq/qp.hpp - an RC queue pair whose state is part of its type.
#pragma once

#include <rcq/config.hpp>
#include <rcq/cq.hpp>
#include <rcq/detail/dependent_false.hpp>
#include <rcq/detail/handle.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/detail/misuse.hpp>
#include <rcq/error.hpp>
#include <rcq/pd.hpp>
#include <rcq/state.hpp>

#include <infiniband/verbs.h>

#include <array>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <string>

namespace rcq {

/// Sizes of the queues, fixed when the QP is created.
struct qp_caps {
    /// Send queue depth.
    std::uint32_t max_send_wr = 64;
    /// Receive queue depth.
    std::uint32_t max_recv_wr = 64;
    /// Scatter/gather elements per send.
    std::uint32_t max_send_sge = 1;
    /// Scatter/gather elements per receive.
    std::uint32_t max_recv_sge = 1;
    /// Bytes a send may carry inline.
    std::uint32_t max_inline_data = 0;
    /// Signal every send (sq_sig_all); otherwise each WR chooses.
    bool signal_all = false;
    /// Take receives from this shared receive queue (rcq::srq) instead of
    /// the QP's own; post_recv on the QP then fails.
    ibv_srq* srq = nullptr;
    /// IBV_QP_EX_WITH_* operations to enable the extended post API for
    /// (rcq::all_rc_send_ops for all); 0 creates a QP with ibv_create_qp.
    std::uint64_t send_ops = 0;
};

/// RESET -> INIT.
struct init_attrs {
    /// The port, from 1.
    std::uint8_t port_num = 1;
    /// The partition key index.
    std::uint16_t pkey_index = 0;
    /// Remote access the peer gets (IBV_ACCESS_REMOTE_*). None by default:
    /// SEND/RECV needs none, and remote access is granted only on request.
    unsigned access = 0;
};

/// INIT -> RTR: where the peer is. RoCE v2 always routes with a GRH.
struct rtr_attrs {
    /// The peer's QP number (24 bits used; higher bits are ignored).
    std::uint32_t dest_qpn = 0;
    std::uint32_t rq_psn = 0; ///< The peer's initial send PSN.
    std::uint16_t dlid = 0; ///< The peer's LID; 0 on RoCE.
    /// The peer's GID.
    std::array<std::uint8_t, 16> dgid{};
    std::uint8_t sgid_index = 0; ///< Our RoCE v2 GID's index (rcq::choose_gid).
    /// The port, from 1.
    std::uint8_t port_num = 1;
    ibv_mtu path_mtu = IBV_MTU_1024; ///< The path MTU: at most the port's active MTU.
    /// The GRH hop limit.
    std::uint8_t hop_limit = 64;
    /// The GRH flow label: 0 unless a connection manager chose one (RoCE v2
    /// derives the UDP source port from it).
    std::uint32_t flow_label = 0;
    /// The GRH's traffic class: DSCP in the upper 6 bits, ECN in the lower 2
    /// (e.g. DSCP 26 is 104). Switches map it to a lossless (PFC) class.
    std::uint8_t traffic_class = 0;
    /// Service level (0-15); on RoCE it selects the VLAN priority (PCP).
    std::uint8_t sl = 0;
    /// RDMA READs and atomics the peer may have outstanding towards us
    /// (our responder resources); at most the device's max_qp_rd_atom.
    std::uint8_t max_dest_rd_atomic = 1;
    /// How long a sender we turned away for lack of a receive (an RNR NAK)
    /// waits before trying again: 12 is 0.64 ms.
    std::uint8_t min_rnr_timer = 12;
};

/// RTR -> RTS.
struct rts_attrs {
    std::uint32_t sq_psn = 0; ///< Our initial send PSN, the one the peer was told.
    /// Local ACK timeout 4.096 us * 2^timeout; 14 (67 ms) tolerates software RoCE.
    std::uint8_t timeout = 14;
    /// Retransmissions after an ACK timeout before the WR fails with
    /// IBV_WC_RETRY_EXC_ERR. 6, not 7: Soft-RoCE (rxe) treats 7 as "retry
    /// forever", so a dead peer would never be reported. With timeout 14 a
    /// peer that stopped answering is reported after about 7 x 67 ms = 0.5 s.
    std::uint8_t retry_cnt = 6;
    /// Retries after a receiver-not-ready NAK (the peer had no receive
    /// posted) before IBV_WC_RNR_RETRY_EXC_ERR. 7 means "for ever", which
    /// turns a missing receive into a silent stall; 6 rides out a receiver
    /// that is a few timer periods late (the peer's min_rnr_timer, 0.64 ms by
    /// default) and then reports the bug as an error naming its cause.
    std::uint8_t rnr_retry = 6;
    /// RDMA READs and atomics we may have outstanding (our initiator depth);
    /// at most the peer's max_dest_rd_atomic and our device's max_qp_init_rd_atom.
    std::uint8_t max_rd_atomic = 1;
};

namespace detail {

/// Creates an RC QP on `domain` with `caps` (ibv_create_qp, or
/// ibv_create_qp_ex when caps.send_ops asks for the extended post API);
/// never null: throws rcq::error naming the sizes asked for.
RCQ_DECL ibv_qp* create_rc_qp(ibv_pd* domain, ibv_cq* sends, ibv_cq* receives, const qp_caps& caps);

/// ibv_modify_qp of `q` (null: a moved-from handle, refused) with `attr` and
/// `mask`; throws rcq::error naming `step`, the QPN and `hint`.
RCQ_DECL void modify_qp(ibv_qp* q, ibv_qp_attr& attr, int mask, const std::string& step,
                        const std::string& hint);

} // namespace detail

/// A Reliable Connection queue pair in state `State` (rcq::state::*).
///
/// Each transition consumes the handle and returns one of the next state's
/// type, so a QP can only be used as its state allows:
///
///     rcq::qp<rcq::state::reset> q(pd, cq);
///     auto ready = std::move(q).to_init({}).to_rtr(peer).to_rts(mine);
///     ready.post_send(wr);   // compiles only on qp<state::rts>
///
/// Move-only, exactly the size of an `ibv_qp*`; destroys the QP on
/// destruction. A transition that fails throws rcq::error and leaves the QP
/// with the handle it was called on, which destroys it.
///
/// A handle that was moved from (by a transition, or std::move) is empty.
/// C++ cannot forbid using it: a transition on it throws rcq::error; a post
/// or qp_num() on it stops the program with a message when RCQ_DEBUG_CHECKS
/// is on (debug builds) and is undefined otherwise; clang-tidy's bugprone-use-after-move
/// finds such uses in source.
/// Thread safety: as verbs; posting from several threads on one QP needs the
/// caller's own lock.
template <class State>
class qp {
    static_assert(qp_state<State>, "rcq::qp<State>: State must be one of rcq::state::reset, "
                                   "init, rtr, rts or error");

public:
    /// The state this handle is in.
    using state_type = State;

    /// Creates an RC QP in RESET on `domain` whose send and receive
    /// completions go to one shared CQ (a plain rcq::cq or rcq::cq_ex).
    qp(ibv_pd* domain, const cq& shared, const qp_caps& caps = {})
        : qp(domain, shared.get(), shared.get(), caps) {
        static_assert(qp_must_be_created_in_reset<State>,
                      "rcq::qp: qp_must_be_created_in_reset: a new QP is in RESET; write "
                      "rcq::qp<rcq::state::reset> q(pd, cq) and walk it to RTS with "
                      "std::move(q).to_init(...).to_rtr(...).to_rts(...)");
    }

    /// Creates an RC QP in RESET on `domain` with separate completion queues;
    /// their types keep the two from being swapped.
    qp(ibv_pd* domain, const send_cq& sends, const recv_cq& receives, const qp_caps& caps = {})
        : qp(domain, sends.get(), receives.get(), caps) {
        static_assert(qp_must_be_created_in_reset<State>,
                      "rcq::qp: qp_must_be_created_in_reset: a new QP is in RESET; write "
                      "rcq::qp<rcq::state::reset> q(pd, send_cq, recv_cq) and walk it to RTS with "
                      "std::move(q).to_init(...).to_rtr(...).to_rts(...)");
    }

    /// A send_cq or recv_cq alone would take both kinds of completions.
    template <class OneSided>
        requires std::derived_from<OneSided, send_cq> || std::derived_from<OneSided, recv_cq>
    qp(ibv_pd*, const OneSided&, const qp_caps& = {}) {
        static_assert(detail::dependent_false<OneSided>,
                      "rcq::qp: shared_cq_must_be_a_plain_cq: a send_cq or recv_cq alone would "
                      "receive both send and receive completions; pass an rcq::cq to share one "
                      "CQ, or both: qp(pd, send_cq, recv_cq)");
    }

    /// The CQs must outlive the QP: a temporary one would be destroyed (and
    /// refused by verbs, since the QP still uses it) at the end of the
    /// statement. Name them in variables declared before the QP.
    qp(ibv_pd*, cq&&, const qp_caps& = {}) = delete;
    qp(ibv_pd*, send_cq&&, const recv_cq&, const qp_caps& = {}) = delete;
    qp(ibv_pd*, const send_cq&, recv_cq&&, const qp_caps& = {}) = delete;
    qp(ibv_pd*, send_cq&&, recv_cq&&, const qp_caps& = {}) = delete;

    /// Escape hatch for interop: adopts a QP made elsewhere, trusting the
    /// caller that it is RC and in `State`. rcq destroys it.
    static qp adopt_unchecked(ibv_qp* raw) noexcept { return qp(raw); }

    /// Takes over the QP.
    qp(qp&&) noexcept = default;
    /// Takes over the QP.
    qp& operator=(qp&&) noexcept = default;

    /// The raw QP.
    ibv_qp* get() const noexcept { return qp_.get(); }
    /// The QP number. Precondition: the handle is not empty (checked with
    /// RCQ_DEBUG_CHECKS on).
    std::uint32_t qp_num() const noexcept {
        RCQ_DEBUG_CHECK(qp_, "qp_num() of an empty rcq::qp handle: it was moved from (a transition "
                             "consumes it); ask the handle the transition returned");
        return qp_->qp_num;
    }
    /// Gives up ownership of the raw QP without destroying it.
    ibv_qp* release() && noexcept { return qp_.release(); }

    // -- transitions -------------------------------------------------------

    /// RESET -> INIT; consumes this handle; throws rcq::error naming the step.
    [[nodiscard]] qp<state::init> to_init(const init_attrs& a = {}) && {
        static_assert(qp_must_be_in_reset_to_move_to_init<State>,
                      "rcq::qp::to_init: qp_must_be_in_reset_to_move_to_init: this QP is past "
                      "RESET; go back with std::move(q).to_reset() first");
        ibv_qp_attr attr{};
        attr.qp_state = IBV_QPS_INIT;
        attr.port_num = a.port_num;
        attr.pkey_index = a.pkey_index;
        attr.qp_access_flags = a.access;
        modify(attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS,
               "RESET->INIT", "ports count from 1; check the port number");
        return next<state::init>();
    }

    /// INIT -> RTR; consumes this handle; throws rcq::error naming the step.
    [[nodiscard]] qp<state::rtr> to_rtr(const rtr_attrs& a) && {
        static_assert(qp_must_be_in_init_to_move_to_rtr<State>,
                      "rcq::qp::to_rtr: qp_must_be_in_init_to_move_to_rtr: the QP goes "
                      "RESET -> INIT -> RTR -> RTS in that order; call to_init(...) first (from "
                      "RESET), or to_reset() and start over");
        ibv_qp_attr attr{};
        attr.qp_state = IBV_QPS_RTR;
        attr.path_mtu = a.path_mtu;
        attr.dest_qp_num = a.dest_qpn & 0xffffff; // QPNs are 24 bits, like PSNs
        attr.rq_psn = a.rq_psn & 0xffffff;
        attr.max_dest_rd_atomic = a.max_dest_rd_atomic;
        attr.min_rnr_timer = a.min_rnr_timer;
        attr.ah_attr.is_global = 1;
        attr.ah_attr.dlid = a.dlid;
        attr.ah_attr.port_num = a.port_num;
        attr.ah_attr.sl = a.sl;
        attr.ah_attr.grh.hop_limit = a.hop_limit;
        attr.ah_attr.grh.flow_label = a.flow_label;
        attr.ah_attr.grh.traffic_class = a.traffic_class;
        attr.ah_attr.grh.sgid_index = a.sgid_index;
        std::memcpy(attr.ah_attr.grh.dgid.raw, a.dgid.data(), 16);
        modify(attr,
               IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                   IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER,
               "INIT->RTR",
               "check that the local GID index is RoCE v2, that the peer's GID is reachable, "
               "and that the path MTU is at most the port's active MTU");
        return next<state::rtr>();
    }

    /// RTR -> RTS; consumes this handle; throws rcq::error naming the step.
    [[nodiscard]] qp<state::rts> to_rts(const rts_attrs& a) && {
        static_assert(qp_must_be_in_rtr_to_move_to_rts<State>,
                      "rcq::qp::to_rts: qp_must_be_in_rtr_to_move_to_rts: the QP goes "
                      "RESET -> INIT -> RTR -> RTS in that order; call to_rtr(peer) first (from "
                      "INIT), or to_init(...) before it (from RESET)");
        ibv_qp_attr attr{};
        attr.qp_state = IBV_QPS_RTS;
        attr.sq_psn = a.sq_psn & 0xffffff;
        attr.timeout = a.timeout;
        attr.retry_cnt = a.retry_cnt;
        attr.rnr_retry = a.rnr_retry;
        attr.max_rd_atomic = a.max_rd_atomic;
        modify(attr,
               IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                   IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC,
               "RTR->RTS", "");
        return next<state::rts>();
    }

    /// Any state -> ERROR: outstanding work requests complete with
    /// IBV_WC_WR_FLUSH_ERR, which is how a QP is drained before teardown.
    [[nodiscard]] qp<state::error> to_error() && {
        ibv_qp_attr attr{};
        attr.qp_state = IBV_QPS_ERR;
        modify(attr, IBV_QP_STATE, std::string(State::name) + "->ERROR", "");
        return next<state::error>();
    }

    /// Any state -> RESET, ready to be connected again.
    [[nodiscard]] qp<state::reset> to_reset() && {
        ibv_qp_attr attr{};
        attr.qp_state = IBV_QPS_RESET;
        modify(attr, IBV_QP_STATE, std::string(State::name) + "->RESET", "");
        return next<state::reset>();
    }

    // Transitions consume the handle, so that the old state's handle is not
    // used by mistake afterwards. Called on an lvalue, they land here (with
    // the same parameters, so that braced arguments land here too).
    /// Refused at compile time: transitions take an rvalue (std::move).
    void to_init(const init_attrs& = {}) & { consume_rule(); }
    /// Refused at compile time: transitions take an rvalue (std::move).
    void to_rtr(const rtr_attrs&) & { consume_rule(); }
    /// Refused at compile time: transitions take an rvalue (std::move).
    void to_rts(const rts_attrs&) & { consume_rule(); }
    /// Refused at compile time: transitions take an rvalue (std::move).
    void to_error() & { consume_rule(); }
    /// Refused at compile time: transitions take an rvalue (std::move).
    void to_reset() & { consume_rule(); }

    // -- hot path ------------------------------------------------------------

    /// Posts a chain of send work requests: exactly ibv_post_send. Returns 0
    /// or an errno value, with `bad` set to the first WR not posted.
    [[nodiscard]] RCQ_ALWAYS_INLINE int post_send(ibv_send_wr& wr, ibv_send_wr*& bad) noexcept
        requires qp_must_be_in_rts_to_post_send<State>
    {
        live();
        return ibv_post_send(qp_.get(), &wr, &bad);
    }
    /// Posts one send work request (or chain); returns 0 or an errno value.
    [[nodiscard]] RCQ_ALWAYS_INLINE int post_send(ibv_send_wr& wr) noexcept
        requires qp_must_be_in_rts_to_post_send<State>
    {
        ibv_send_wr* bad;
        live();
        return ibv_post_send(qp_.get(), &wr, &bad);
    }

    /// Posts a chain of receive work requests: exactly ibv_post_recv.
    [[nodiscard]] RCQ_ALWAYS_INLINE int post_recv(ibv_recv_wr& wr, ibv_recv_wr*& bad) noexcept
        requires qp_must_be_in_init_rtr_or_rts_to_post_recv<State>
    {
        live();
        return ibv_post_recv(qp_.get(), &wr, &bad);
    }
    /// Posts one receive work request (or chain); returns 0 or an errno value.
    [[nodiscard]] RCQ_ALWAYS_INLINE int post_recv(ibv_recv_wr& wr) noexcept
        requires qp_must_be_in_init_rtr_or_rts_to_post_recv<State>
    {
        ibv_recv_wr* bad;
        live();
        return ibv_post_recv(qp_.get(), &wr, &bad);
    }

private:
    template <class>
    friend class qp;

    // Posting on an empty handle would hand verbs a null QP. Checked in
    // debug builds only (RCQ_DEBUG_CHECKS): it would cost the hot path.
    RCQ_ALWAYS_INLINE void live() const noexcept {
        RCQ_DEBUG_CHECK(qp_, "post on an empty rcq::qp handle: it was moved from (a transition "
                             "such as std::move(q).to_rts(...) consumes it); post on the handle "
                             "the transition returned");
    }
    using raw_handle = detail::handle<ibv_qp, &ibv_destroy_qp>;

    explicit qp(ibv_qp* raw) noexcept : qp_(raw) {}

    qp(ibv_pd* domain, ibv_cq* sends, ibv_cq* receives, const qp_caps& caps)
        : qp_(detail::create_rc_qp(domain, sends, receives, caps)) {}

    static void consume_rule() {
        static_assert(detail::dependent_false<State>,
                      "rcq::qp: a transition consumes its handle (transition_needs_an_rvalue); "
                      "call it on an rvalue and keep the result: auto next = std::move(q).to_xxx(...)");
    }

    void modify(ibv_qp_attr& attr, int mask, const std::string& step, const std::string& hint) {
        detail::modify_qp(qp_.get(), attr, mask, step, hint);
    }

    template <class Next>
    qp<Next> next() noexcept {
        return qp<Next>(qp_.release());
    }

    raw_handle qp_;
};

static_assert(sizeof(qp<state::reset>) == sizeof(ibv_qp*));
static_assert(sizeof(qp<state::rts>) == sizeof(ibv_qp*));

} // namespace rcq

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/qp.ipp>
#endif
