// rcq/mesh.hpp - a full mesh of RC connections among N ranks: one QP per
// other rank, all on one rcq::resources.
#pragma once

#include <rcq/config.hpp>

#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/qp.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace rcq {

/// What a handshake for a mesh offers (rcq::handshake::mpi,
/// rcq::handshake::file_mesh, or the caller's own): this process's rank, the
/// number of ranks, a collective exchange in which element j of what we pass
/// goes to rank j and element j of the result is what rank j passed for us,
/// and a go-ahead that returns once every rank called it.
template <class H>
concept mesh_handshake = std::move_constructible<H> && requires(H& h, std::span<const endpoint> local) {
    { h.rank() } -> std::convertible_to<int>;
    { h.size() } -> std::convertible_to<int>;
    { h.exchange(local) } -> std::same_as<std::vector<endpoint>>;
    h.barrier();
};

/// What rcq::mesh needs of the shared resources (rcq::resources<...>): QPs
/// in INIT, our endpoint for each, and INIT -> RTS against a peer's.
template <class R>
concept mesh_resources = requires(const R& r, qp<state::init>&& q, const endpoint& e) {
    { r.make_qp() } -> std::same_as<qp<state::init>>;
    { r.local_endpoint(q) } -> std::same_as<endpoint>;
    { r.to_rts(std::move(q), e, e) } -> std::same_as<qp<state::rts>>;
};

/// A full mesh: rank i holds one RC QP to each other rank j, in RTS and
/// connected to rank j's QP for rank i. The constructor makes the QPs on the
/// shared resources (their PD, CQ and, if any, SRQ), swaps endpoints through
/// the mesh handshake (collective: every rank constructs its mesh together,
/// bounded by the handshake's deadline) and brings each QP to RTS; every
/// step is the resources' own (make_qp, local_endpoint, to_rts), as for one
/// peer.
///
///     rcq::resources<> res({.max_qps = std::uint32_t(size - 1)});
///     rcq::mesh m(res, rcq::handshake::mpi{});
///     for (int j : m.peers()) ... post a receive on m.queue_pair(j) ...
///     m.ready();                                  // every rank's receives are posted
///     for (int j : m.peers()) ... post a send on m.queue_pair(j) ...
///
/// All QPs complete on the resources' one CQ: route completions to ranks by
/// wc.qp_num with rcq::router (m.qp_num(j) is what they carry).
///
/// Move-only. It must not outlive the resources its QPs were made from.
/// Not thread safe.
template <mesh_handshake Handshake>
class mesh {
public:
    /// The handshake that swapped the endpoints.
    using handshake_type = Handshake;

    /// Makes size() - 1 QPs on `res`, swaps endpoints through `handshake`
    /// and brings every QP to RTS. Throws rcq::error naming the step (the
    /// QPs made so far are destroyed then).
    template <mesh_resources Resources>
    mesh(const Resources& res, Handshake handshake) : handshake_(std::move(handshake)) {
        const int n = handshake_.size();
        const int self = handshake_.rank();
        if (n < 1 || self < 0 || self >= n)
            throw_invalid("mesh: the handshake says rank " + std::to_string(self) + " of " +
                          std::to_string(n));
        const auto count = static_cast<std::size_t>(n);
        std::vector<std::optional<qp<state::init>>> fresh(count);
        local_.assign(count, endpoint{});
        for (std::size_t j = 0; j < count; ++j) {
            if (j == static_cast<std::size_t>(self)) continue;
            fresh[j].emplace(res.make_qp());
            local_[j] = res.local_endpoint(*fresh[j]);
        }
        remote_ = handshake_.exchange(local_);
        if (remote_.size() != count)
            throw_invalid("mesh: the handshake returned " + std::to_string(remote_.size()) +
                          " endpoints for " + std::to_string(n) + " ranks");
        qps_.resize(count);
        for (std::size_t j = 0; j < count; ++j)
            if (fresh[j]) qps_[j].emplace(res.to_rts(std::move(*fresh[j]), local_[j], remote_[j]));
        for (int j = 0; j < n; ++j)
            if (j != self) peers_.push_back(j);
    }

    /// The QPs would outlive temporary resources (destroyed at the end of
    /// the statement): name the resources in a variable that outlives the mesh.
    template <mesh_resources Resources>
    mesh(const Resources&& res, Handshake handshake) = delete;

    /// This process's rank.
    int rank() const noexcept { return handshake_.rank(); }
    /// The number of ranks.
    int size() const noexcept { return handshake_.size(); }
    /// The other ranks, in order: what queue_pair() and the rest accept.
    std::span<const int> peers() const noexcept { return peers_; }

    /// The QP connected to rank `peer`. Throws rcq::error (EINVAL) for our
    /// own rank or one outside the mesh.
    qp<state::rts>& queue_pair(int peer) & { return *qps_[index(peer)]; }
    /// Not of a temporary mesh: its QPs are destroyed at the end of the
    /// statement, leaving the reference dangling.
    qp<state::rts>& queue_pair(int peer) && = delete;
    /// The QP number of our QP to rank `peer` (what its completions carry).
    std::uint32_t qp_num(int peer) const { return qps_[index(peer)]->qp_num(); }
    /// Our endpoint for rank `peer`, as sent.
    const endpoint& local(int peer) const { return local_[index(peer)]; }
    /// Rank `peer`'s endpoint for us, as received.
    const endpoint& remote(int peer) const { return remote_[index(peer)]; }

    /// The go-ahead: returns once every rank called it (bounded by the
    /// handshake's deadline; throws rcq::error). Call it after posting the
    /// receives the other ranks' first sends land in.
    void ready() { handshake_.barrier(); }

    /// The handshake.
    Handshake& handshake() noexcept { return handshake_; }

private:
    std::size_t index(int peer) const {
        if (peer < 0 || peer >= size() || peer == rank())
            throw_invalid("mesh (rank " + std::to_string(rank()) + " of " + std::to_string(size()) +
                              "): no QP to rank " + std::to_string(peer),
                          "the peers are the ranks 0.." + std::to_string(size() - 1) +
                              " other than this one (see peers())");
        return static_cast<std::size_t>(peer);
    }

    Handshake handshake_;
    std::vector<endpoint> local_;                       // by rank; ours empty
    std::vector<endpoint> remote_;                      // by rank; ours empty
    std::vector<std::optional<qp<state::rts>>> qps_;    // by rank; ours empty
    std::vector<int> peers_;
};

} // namespace rcq
