// rcq/resources.hpp - what one process holds on one device for all its peers.
#pragma once

#include <rcq/config.hpp>

#include <rcq/buffer/owned.hpp>
#include <rcq/category.hpp>
#include <rcq/cq.hpp>
#include <rcq/detail/device_core.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/detail/policy_bag.hpp>
#include <rcq/detail/qp_setup.hpp>
#include <rcq/device.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/gid.hpp>
#include <rcq/pd.hpp>
#include <rcq/peer.hpp>
#include <rcq/poll/busy.hpp>
#include <rcq/policy.hpp>
#include <rcq/qp.hpp>
#include <rcq/srq.hpp>

#include <infiniband/verbs.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <iosfwd>
#include <span>
#include <string>
#include <type_traits>

namespace rcq {

/// Run-time settings of rcq::resources; every field has a working default.
/// The fields that rcq::connection_options also has mean the same there
/// (see its documentation); they apply to every QP made from the resources.
struct resources_options {
    std::string device{};         ///< As connection_options::device.
    std::uint8_t port = 1;        ///< As connection_options::port.
    std::optional<int> gid_index{}; ///< As connection_options::gid_index.
    /// The queue sizes of every QP. With an SRQ (srq_depth > 0) the QPs take
    /// their receives from it, and caps.max_recv_wr and caps.srq are ignored.
    qp_caps caps{};
    /// How many QPs at a time the CQ is sized for (see cq_depth).
    std::uint32_t max_qps = 16;
    /// Entries of the one CQ that all QPs share. A CQ that overruns is fatal
    /// to every QP on it (IBV_EVENT_CQ_ERR), so it must hold every completion
    /// that can be outstanding at once: max_qps x caps.max_send_wr for the
    /// sends, plus srq_depth with an SRQ or max_qps x caps.max_recv_wr
    /// without one. 0 (the default) is exactly that sum; a value below it is
    /// refused. The caller sizes max_qps: rcq does not count live QPs, and a
    /// program with more QPs than max_qps must poll often enough that the
    /// outstanding completions stay within cq_depth.
    int cq_depth = 0;
    /// Receives of the shared receive queue all QPs take their receives from;
    /// 0 (the default): no SRQ, each QP has its own receive queue.
    std::uint32_t srq_depth = 0;
    unsigned remote_access = 0;                 ///< As connection_options::remote_access.
    std::optional<int> max_mtu{};               ///< As connection_options::max_mtu.
    std::optional<int> initiator_depth{};       ///< As connection_options::initiator_depth.
    std::optional<int> responder_resources{};   ///< As connection_options::responder_resources.
    std::uint8_t traffic_class = 0;             ///< As connection_options::traffic_class.
    std::uint8_t service_level = 0;             ///< As connection_options::service_level.
    std::uint8_t retry_cnt = rts_attrs{}.retry_cnt; ///< As connection_options::retry_cnt.
    std::uint8_t rnr_retry = rts_attrs{}.rnr_retry; ///< As connection_options::rnr_retry.
    /// Local ACK timeout, 4.096 us x 2^ack_timeout (rts_attrs::timeout).
    std::uint8_t ack_timeout = rts_attrs{}.timeout;
    std::ostream* narrate = nullptr; ///< As connection_options::narrate.
};

namespace detail {
/// Set when a handshake policy was passed to rcq::resources (reported there).
template <class... Ps>
inline constexpr bool any_handshake =
    (std::is_same_v<typename category_of<Ps>::type, category::handshake> || ...);

/// A stand-in for the handshake slot of the policy bag: resources have none.
struct no_handshake {
    using rcq_category = category::handshake;
    endpoint exchange(const endpoint& e) { return e; }
    void barrier() {}
};
} // namespace detail

/// What one process holds on one device for all its peers: the device
/// context, the port's attributes, the chosen GID, one protection domain, the
/// buffer policy's registered memory, the poll policy and the one CQ it
/// makes, and optionally one shared receive queue. QPs made from it
/// (make_qp, connect) share all of these.
///
/// `Policies` are rcq::poll::* and rcq::buffer::* (or the caller's own), in
/// any order, at most one per category; left out: poll::busy and
/// buffer::owned<4096>. A handshake policy is a compile error: each peer
/// brings its own to connect().
///
///     rcq::resources<> res({.srq_depth = 64});
///     auto a = res.connect(rcq::handshake::tcp::server(18515));
///     auto b = res.connect(rcq::handshake::tcp::server(18516));
///
/// Building blocks, for handshakes of one's own (a listener, a mesh):
/// make_qp() gives a QP in INIT, local_endpoint(q) what the peer needs to
/// know of it, to_rts(q, local, remote) brings it to RTS against the peer.
///
/// Neither copyable nor movable: its QPs point at its PD, CQ and SRQ, so it
/// must outlive them (and every rcq::peer made from it). make_qp,
/// local_endpoint, to_rts and connect only read the resources and call
/// verbs, which libibverbs makes thread safe: several threads may run them at
/// once (one handshake per client, say) when narrate is nullptr or a stream
/// that may be written from several threads (std::cout and std::clog are
/// free of data races, though the lines of two threads may mix). Polling the CQ is one thread's job at a time.
template <class... Policies>
class resources {
    static_assert(!detail::any_handshake<Policies...>,
                  "rcq::resources<...>: a handshake policy was given, but resources are shared "
                  "by many peers and each peer brings its own handshake: drop it here and pass "
                  "one to connect(handshake) per peer");
    using bag = detail::policy_bag<poll::busy, buffer::owned<>, detail::no_handshake, Policies...>;

public:
    /// The poll policy in use (rcq::poll::busy unless given).
    using poll_type = typename bag::poll;
    /// The buffer policy in use (rcq::buffer::owned<4096> unless given).
    using buffer_type = typename bag::buffer;
    /// The buffer policy's settings.
    using buffer_config = typename buffer_type::config;

    /// Opens the device, allocates the PD, registers the buffer, creates the
    /// CQ and the SRQ, narrating each step; throws rcq::error naming the step.
    explicit resources(const resources_options& opts = {}, const buffer_config& buffer_cfg = {})
        : opts_(checked(opts)),
          core_({.device = opts_.device,
                 .port = opts_.port,
                 .gid_index = opts_.gid_index,
                 .remote_access = opts_.remote_access,
                 .cq_depth = cq_depth(opts_)},
                buffer_cfg, narrator()),
          srq_(make_srq()) {}

    resources(const resources&) = delete;
    resources& operator=(const resources&) = delete;

    /// The options in use (cq_depth as given, possibly 0 for the computed one).
    const resources_options& options() const noexcept { return opts_; }
    /// The device context.
    ibv_context* device() const noexcept { return core_.ctx; }
    /// The port's attributes, as queried when the resources were made.
    const ibv_port_attr& port() const noexcept { return core_.port; }
    /// The local GID in use.
    const gid_entry& gid() const noexcept { return core_.gid; }
    /// The protection domain of the buffer and of every QP.
    ibv_pd* protection_domain() const noexcept { return core_.pd; }
    /// The registered memory of the buffer policy.
    std::span<std::byte> buffer() const noexcept { return core_.buffer.bytes(); }
    /// The buffer policy, e.g. for its lkey and rkey.
    const buffer_type& buffer_policy() const noexcept { return core_.buffer; }
    /// The poll policy, to wait on the CQ with a deadline.
    poll_type& poll_policy() noexcept { return core_.poll; }
    /// The completion queue every QP's sends and receives complete on.
    const cq& completion_queue() const noexcept { return core_.cq; }
    /// The shared receive queue, or nullptr without one (srq_depth 0).
    srq* shared_receive_queue() noexcept { return srq_ ? &*srq_ : nullptr; }

    /// A new RC QP on the shared PD and CQ (and SRQ, if any), in INIT with
    /// the options' port and remote access; narrated. Receives may be posted
    /// on it now (on the SRQ when there is one). Throws rcq::error.
    qp<state::init> make_qp() const& {
        qp_caps caps = opts_.caps;
        caps.srq = srq_ ? srq_->get() : nullptr;
        if (srq_) caps.max_recv_wr = 0;
        return detail::create_in_init(core_.pd, core_.cq, caps,
                                      {.port_num = opts_.port, .access = opts_.remote_access},
                                      narrator());
    }

    /// The QP would outlive the PD and CQ of temporary resources (destroyed
    /// at the end of the statement, which verbs would refuse while the QP
    /// uses them): name the resources in a variable that outlives its QPs.
    qp<state::init> make_qp() const&& = delete;

    /// Our endpoint for `q`, to send to the peer: its QPN, a random initial
    /// PSN, the port's LID, our GID and MTU, the READ/atomic depths, and the
    /// buffer's memory token when remote_access is set. Throws rcq::error for
    /// an option out of range.
    template <class State>
    endpoint local_endpoint(const qp<State>& q) const {
        return detail::local_endpoint(detail::qp_settings_of(opts_), core_.ctx, core_.port,
                                      core_.gid, q.qp_num(), core_.buffer.bytes(),
                                      core_.buffer.rkey());
    }

    /// INIT -> RTR -> RTS of `q` against the peer's endpoint `remote`, with
    /// the settings both sides agree on (rcq::agree) and the options' own;
    /// `local` is what the peer was sent. Narrated; throws rcq::error.
    qp<state::rts> to_rts(qp<state::init>&& q, const endpoint& local,
                          const endpoint& remote) const {
        const detail::transition_attrs t =
            detail::agreed_transitions(detail::qp_settings_of(opts_), core_.gid, local, remote);
        return detail::walk_to_rts(std::move(q), t, detail::mtu_source(local, remote), narrator());
    }

    /// Connects one peer through its handshake: a QP (make_qp), the endpoint
    /// exchange (bounded by the handshake's own deadline), INIT -> RTS. Call
    /// ready() on the result once its receives are posted. Throws rcq::error
    /// naming the step; the QP is destroyed then.
    template <class Handshake>
    peer<Handshake> connect(Handshake handshake) const& {
        static_assert(handshake_policy<Handshake>,
                      "rcq::resources::connect(h): h must satisfy rcq::handshake_policy "
                      "(exchange(endpoint) and barrier())");
        static_assert(!detail::handshake_drives_the_qp<Handshake>,
                      "rcq::resources::connect(h): this handshake (the RDMA CM) resolves its own "
                      "device and chooses the QP's attributes; use rcq::connection for it");
        auto q = make_qp();
        const endpoint local = local_endpoint(q);
        const endpoint remote = detail::exchange_endpoints(handshake, local, narrator());
        auto ready = to_rts(std::move(q), local, remote);
        return peer<Handshake>(std::move(handshake), std::move(ready), local, remote,
                               opts_.narrate);
    }

    /// The peer's QP would outlive temporary resources, as with make_qp().
    template <class Handshake>
    peer<Handshake> connect(Handshake handshake) const&& = delete;

private:
    detail::narrator narrator() const noexcept { return {opts_.narrate}; }

    static std::uint64_t needed_depth(const resources_options& o) {
        const std::uint64_t sends = std::uint64_t(o.max_qps) * o.caps.max_send_wr;
        return sends + (o.srq_depth != 0 ? std::uint64_t(o.srq_depth)
                                         : std::uint64_t(o.max_qps) * o.caps.max_recv_wr);
    }

    static int cq_depth(const resources_options& o) {
        return o.cq_depth != 0 ? o.cq_depth : static_cast<int>(needed_depth(o));
    }

    static const resources_options& checked(const resources_options& o) {
        detail::check_qp_settings(detail::qp_settings_of(o), "resources_options");
        const std::uint64_t needed = needed_depth(o);
        if (o.max_qps == 0)
            throw_invalid("resources_options::max_qps is 0", "size the CQ for at least one QP");
        if (o.cq_depth == 0 && needed > 0x7fffffff)
            throw_invalid("resources_options: a CQ for " + std::to_string(o.max_qps) +
                              " QPs would need " + std::to_string(needed) + " entries",
                          "lower max_qps or the queue depths");
        if (o.cq_depth < 0 || (o.cq_depth != 0 && std::uint64_t(o.cq_depth) < needed))
            throw_invalid("resources_options::cq_depth " + std::to_string(o.cq_depth) +
                              " is less than the " + std::to_string(needed) +
                              " completions max_qps QPs can have outstanding (max_qps x "
                              "caps.max_send_wr, plus srq_depth or max_qps x caps.max_recv_wr)",
                          "set cq_depth >= " + std::to_string(needed) +
                              " (or 0 for exactly that), or lower max_qps or the queue depths");
        return o;
    }

    std::optional<srq> make_srq() const {
        if (opts_.srq_depth == 0) return std::nullopt;
        srq s(core_.pd, opts_.srq_depth, opts_.caps.max_recv_sge);
        narrator()("created a shared receive queue of " + std::to_string(opts_.srq_depth) +
                   " receives");
        return s;
    }

    resources_options opts_;
    // Declaration order is construction order; destruction runs backwards:
    // the SRQ before the PD (in the core), the PD before the device.
    detail::device_core<poll_type, buffer_type> core_;
    std::optional<srq> srq_;
};

} // namespace rcq
