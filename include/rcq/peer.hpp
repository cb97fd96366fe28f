// rcq/peer.hpp - one connected peer among many: a QP in RTS plus what the
// handshake learned.
#pragma once

#include <rcq/config.hpp>

#include <rcq/detail/qp_setup.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/policy.hpp>
#include <rcq/qp.hpp>

#include <cstdint>
#include <iosfwd>
#include <utility>

namespace rcq {

/// One connected peer: its QP in RTS (on resources shared with other peers),
/// our endpoint and the peer's as swapped, and the handshake that swapped
/// them, kept for the go-ahead (ready()) and, where it has one, its liveness
/// signal (peer_gone()). Made by rcq::resources::connect, or from parts by a
/// handshake of one's own (a listener, a mesh).
///
/// Move-only. A moved-from peer has an empty QP handle (see rcq::qp). It
/// must not outlive the rcq::resources its QP was made from. Destroying it
/// destroys the QP at once; to let its outstanding work finish (or flush)
/// first while other peers go on, use rcq::tear_down. Not thread safe.
template <class Handshake>
class peer {
    static_assert(handshake_policy<Handshake>,
                  "rcq::peer<Handshake>: Handshake must satisfy rcq::handshake_policy");

public:
    /// The handshake policy this peer was connected with.
    using handshake_type = Handshake;

    /// A peer from its parts: the handshake that swapped `local` (ours) and
    /// `remote` (the peer's), and the QP brought to RTS against `remote`.
    /// `narrate` receives the go-ahead's narration (nullptr: silence).
    peer(Handshake handshake, qp<state::rts> q, const endpoint& local, const endpoint& remote,
         std::ostream* narrate = nullptr)
        : handshake_(std::move(handshake)), out_(narrate), local_(local), remote_(remote),
          qp_(std::move(q)) {}

    /// Takes over the QP and the handshake.
    peer(peer&&) noexcept(std::is_nothrow_move_constructible_v<Handshake>) = default;
    /// Takes over the QP and the handshake (the old QP is destroyed).
    peer& operator=(peer&&) noexcept(std::is_nothrow_move_assignable_v<Handshake>) = default;
    peer(const peer&) = delete;
    peer& operator=(const peer&) = delete;

    /// The QP, for posting.
    qp<state::rts>& queue_pair() & noexcept { return qp_; }
    /// Not of a temporary peer: its QP is destroyed at the end of the
    /// statement, leaving the reference dangling. Keep the peer in a variable
    /// (or take the QP with release_qp()).
    qp<state::rts>& queue_pair() && = delete;
    /// The QP number: what completions of this peer carry in wc.qp_num.
    std::uint32_t qp_num() const noexcept { return qp_.qp_num(); }
    /// Our endpoint, as sent to the peer.
    const endpoint& local() const noexcept { return local_; }
    /// The peer's endpoint, as received.
    const endpoint& remote() const noexcept { return remote_; }
    /// The handshake policy.
    Handshake& handshake() noexcept { return handshake_; }

    /// The go-ahead: returns once both sides called it (bounded by the
    /// handshake's deadline; throws rcq::error). Call it after posting the
    /// receives the peer's first sends will land in (on the SRQ, if the QP
    /// takes its receives from one).
    void ready() { detail::go_ahead(handshake_, detail::narrator{out_}); }

    /// True when the handshake's liveness signal says the peer has gone;
    /// false when that is not known (always, for a handshake without one).
    /// Costs a system call where there is a signal; never blocks.
    bool peer_gone() { return detail::peer_gone(handshake_); }

    /// Whether peer_gone() can ever be true for this handshake.
    static constexpr bool has_liveness_signal = detail::has_liveness_signal<Handshake>;

    /// Gives up the QP (e.g. to rcq::tear_down); the peer keeps the rest.
    qp<state::rts> release_qp() && noexcept { return std::move(qp_); }

private:
    Handshake handshake_; // before the QP, so that it outlives it
    std::ostream* out_;
    endpoint local_;
    endpoint remote_;
    qp<state::rts> qp_;
};

} // namespace rcq
