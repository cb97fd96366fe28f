// rcq/detail/qp_setup.hpp - the steps that bring up an RC queue pair, one
// implementation shared by rcq::connection (one peer) and rcq::resources
// (many peers on one device): opening the device, choosing the GID, the PD,
// the buffer and the CQ, a QP in INIT, our endpoint, and INIT -> RTR -> RTS
// against the peer's endpoint with the settings both sides agree on.
#pragma once

#include <rcq/config.hpp>
#include <rcq/agreement.hpp>
#include <rcq/cq.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/device.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/gid.hpp>
#include <rcq/pd.hpp>
#include <rcq/qp.hpp>

#include <infiniband/verbs.h>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <sys/socket.h>

namespace rcq::detail {

/// Writes each set-up step as one "[rcq] ..." line, or nothing without a stream.
struct narrator {
    std::ostream* out = nullptr; ///< Where the lines go; nullptr for silence.

    /// Writes one line (flushed at once, so that it survives a crash).
    RCQ_DECL void operator()(std::string_view line) const;
};

/// The settings of a QP that rcq::connection_options and
/// rcq::resources_options share (each documents them), gathered so that the
/// set-up steps that read them (check_qp_settings, local_endpoint,
/// agreed_transitions) are compiled once, not once per options type.
struct qp_settings {
    std::uint8_t port = 1;                         ///< The port, from 1.
    std::optional<int> gid_index{};                ///< The GID index, if given.
    std::optional<int> max_mtu{};                  ///< Largest path MTU in bytes, if given.
    std::optional<int> initiator_depth{};          ///< READs/atomics we may have outstanding.
    std::optional<int> responder_resources{};      ///< READs/atomics we accept outstanding.
    std::uint8_t traffic_class = 0;                ///< GRH traffic class.
    std::uint8_t service_level = 0;                ///< Service level, 0-15.
    std::uint8_t retry_cnt = rts_attrs{}.retry_cnt; ///< Transport retries, 0-7.
    std::uint8_t rnr_retry = rts_attrs{}.rnr_retry; ///< Receiver-not-ready retries, 0-7.
    std::uint8_t ack_timeout = rts_attrs{}.timeout; ///< Local ACK timeout exponent.
    unsigned remote_access = 0;                    ///< IBV_ACCESS_REMOTE_* for the peer.
    /// The wait bound, where the options have one (connection_options).
    std::optional<std::chrono::milliseconds> completion_timeout{};
};

/// The qp_settings of `opts` (rcq::connection_options, rcq::resources_options).
template <class Options>
qp_settings qp_settings_of(const Options& opts) {
    qp_settings s{.port = opts.port,
                  .gid_index = opts.gid_index,
                  .max_mtu = opts.max_mtu,
                  .initiator_depth = opts.initiator_depth,
                  .responder_resources = opts.responder_resources,
                  .traffic_class = opts.traffic_class,
                  .service_level = opts.service_level,
                  .retry_cnt = opts.retry_cnt,
                  .rnr_retry = opts.rnr_retry,
                  .remote_access = opts.remote_access};
    if constexpr (requires { { opts.ack_timeout } -> std::convertible_to<std::uint8_t>; })
        s.ack_timeout = opts.ack_timeout;
    if constexpr (requires { opts.completion_timeout; })
        s.completion_timeout = opts.completion_timeout;
    return s;
}

/// A buffer policy whose memory is already registered (rcq::buffer::external)
/// names the PD it lives in; the connection then runs on that PD and its
/// device instead of opening its own.
template <class B>
concept brings_own_pd = requires(const typename B::config& c) {
    { B::protection_domain(c) } -> std::same_as<ibv_pd*>;
};

/// A handshake that sets up the connection itself (rcq::handshake::rdma_cm):
/// it names the device its address resolves to, the QP follows the
/// attributes it gives, and it is told once the QP is in RTS.
template <class H>
concept handshake_drives_the_qp = requires(H& h, unsigned access) {
    { h.resolve() } -> std::same_as<ibv_context*>;
    { h.port_num() } -> std::convertible_to<std::uint8_t>;
    { h.gid_index() } -> std::same_as<std::optional<int>>;
    { h.init_attributes(access) } -> std::same_as<init_attrs>;
    { h.rtr_attributes() } -> std::same_as<rtr_attrs>;
    { h.rts_attributes() } -> std::same_as<rts_attrs>;
    h.established();
};

/// A policy's one-line description for the narration, if it has one.
template <class P>
std::string describe_policy(const P& p) {
    if constexpr (requires { { p.describe() } -> std::convertible_to<std::string>; })
        return p.describe();
    else
        return {};
}

/// The address family of the peer the handshake talks to, where it knows it
/// (the TCP handshake does: its socket's family), for the GID choice.
template <class H>
address_family peer_family_of(const H& h) {
    if constexpr (requires { { h.peer_family() } -> std::convertible_to<int>; }) {
        const int family = h.peer_family();
        return family == AF_INET    ? address_family::ipv4
               : family == AF_INET6 ? address_family::ipv6
                                    : address_family::any;
    } else {
        return address_family::any;
    }
}

/// A handshake with a liveness signal: it can tell that the peer has gone.
template <class H>
concept has_liveness_signal =
    requires(H& h) { { h.peer_closed() } -> std::same_as<bool>; } ||
    requires(H& h) { { h.peer_disconnected() } -> std::same_as<bool>; };

/// The handshake's liveness signal: true when the peer is known to have
/// gone, false when that is not known (or the handshake has no signal).
template <class H>
bool peer_gone(H& h) {
    if constexpr (requires { { h.peer_closed() } -> std::same_as<bool>; })
        return h.peer_closed();
    else if constexpr (requires { { h.peer_disconnected() } -> std::same_as<bool>; })
        return h.peer_disconnected();
    else
        return false;
}

/// What the liveness signal of `H` saw, for error hints.
template <class H>
inline constexpr const char* gone_hint =
    requires(H& h) { h.peer_disconnected(); }
        ? "the peer disconnected (RDMA_CM_EVENT_DISCONNECTED)"
        : "the peer closed its handshake connection: its process has ended";

/// The go-ahead's failure `e` again, its hint saying that the peer may
/// never have called ready().
[[noreturn]] RCQ_DECL void rethrow_go_ahead_failure(const error& e);

/// The narration of a buffer policy's memory: its description `how`, size
/// and keys.
RCQ_DECL std::string buffer_line(const std::string& how, std::size_t bytes, std::uint32_t lkey,
                                 std::uint32_t rkey);

/// The narration of a CQ of `depth` entries made by a poll policy `how`.
RCQ_DECL std::string cq_line(int depth, const std::string& how);

/// The narration of our endpoint `local` going out through a handshake `how`.
RCQ_DECL std::string sending_line(const std::string& how, const endpoint& local);

/// The narration of a completion: its opcode, wr_id and, for a receive, length.
RCQ_DECL std::string completion_line(const ibv_wc& wc);

/// A wait for `what` that found the peer gone: throws rcq::error
/// (ECONNRESET) with `hint`.
[[noreturn]] RCQ_DECL void throw_peer_gone(std::string_view what, const char* hint);

/// A negative result `n` of polling the CQ for `what`: throws rcq::error (EIO).
[[noreturn]] RCQ_DECL void throw_poll_failed(std::string_view what, int n);

/// No completion for `what` within `timeout` with nothing outstanding:
/// throws rcq::error (ETIMEDOUT) saying to post before waiting.
[[noreturn]] RCQ_DECL void throw_nothing_outstanding(std::string_view what,
                                                     std::chrono::milliseconds timeout);

/// No completion for `what` within `timeout`: throws rcq::error (ETIMEDOUT)
/// with `hint`.
[[noreturn]] RCQ_DECL void throw_no_completion(std::string_view what,
                                               std::chrono::milliseconds timeout, const char* hint);

/// check_completion(wc, what) for a peer known to have gone: the error's
/// hint starts with `gone_hint`.
RCQ_DECL void check_completion_of_gone_peer(const ibv_wc& wc, std::string_view what,
                                            const char* gone_hint);

/// check_completion(wc, what) for a completion whose retries ran out: the
/// error's hint says that no ACK came from `remote`'s GID and what to check.
RCQ_DECL void check_completion_without_ack(const ibv_wc& wc, std::string_view what,
                                           const endpoint& remote);

/// The go-ahead through handshake `h`, narrated; a failure's hint says that
/// the peer may never have called ready().
template <class H>
void go_ahead(H& h, const narrator& say) {
    say("handshake: waiting for the peer's go-ahead");
    try {
        h.barrier();
    } catch (const error& e) {
        rethrow_go_ahead_failure(e);
    }
    say("handshake: both sides ready; the peer's receives are posted");
}

/// Opens `device` (empty: the first one), narrated.
RCQ_DECL context open_device(const std::string& device, const narrator& say);

/// Checks that `port` is ACTIVE and chooses the GID: index `index`, or
/// (empty) the port's RoCE v2 GID of the peer's family; narrated.
RCQ_DECL gid_entry pick_gid(ibv_context* ctx, std::uint8_t port_num, const ibv_port_attr& port,
                            std::optional<int> index, address_family peer, const narrator& say);

/// A protection domain on `ctx`, narrated.
RCQ_DECL pd make_pd(ibv_context* ctx, const narrator& say);

/// The buffer policy's memory, registered on `domain`, narrated.
template <class Buffer>
Buffer make_buffer(ibv_pd* domain, const typename Buffer::config& cfg, int remote_access,
                   const narrator& say) {
    Buffer b(domain, cfg, remote_access);
    say(buffer_line(describe_policy(b), b.bytes().size(), b.lkey(), b.rkey()));
    return b;
}

/// The poll policy's CQ of `depth` entries, narrated.
template <class Poll>
cq make_cq(Poll& poll, ibv_context* ctx, int depth, const narrator& say) {
    cq c = poll.make_cq(ctx, depth);
    say(cq_line(depth, describe_policy(poll)));
    return c;
}

/// An RC QP on `domain` whose completions go to `shared` (and whose
/// receives come from caps.srq, when set), created in RESET and moved to
/// INIT with `init`; narrated.
RCQ_DECL qp<state::init> create_in_init(ibv_pd* domain, const cq& shared, const qp_caps& caps,
                                        const init_attrs& init, const narrator& say);

/// An optional count option, or min(16, the device's limit); over 255 or
/// over the limit is refused.
RCQ_DECL std::uint8_t rd_atomic_depth(ibv_context* ctx, std::optional<int> asked, int limit,
                                      const char* what, const char* limit_name);

/// A random initial packet sequence number (24 bits).
RCQ_DECL std::uint32_t random_psn();

/// Our endpoint for QP `qpn`: a random initial PSN, the port's LID, GID
/// `gid`, the port's MTU (at most opts.max_mtu), the READ/atomic depths
/// (checked against the device's limits) and, when opts.remote_access is set,
/// the memory token of `memory` (its address, `rkey` and length). Throws
/// rcq::error for a setting out of range.
RCQ_DECL endpoint local_endpoint(const qp_settings& opts, ibv_context* ctx,
                                 const ibv_port_attr& port, const gid_entry& gid,
                                 std::uint32_t qpn, std::span<std::byte> memory,
                                 std::uint32_t rkey);

/// The attributes of INIT -> RTR and RTR -> RTS.
struct transition_attrs {
    rtr_attrs rtr; ///< INIT -> RTR: where the peer is.
    rts_attrs rts; ///< RTR -> RTS: our PSN, retries, READ depth.
};

/// The transitions towards `remote` with the settings both sides agree on
/// (rcq::agree: path MTU, READ/atomic depths) and our own (GID, port, traffic
/// class, service level, retries, ACK timeout).
RCQ_DECL transition_attrs agreed_transitions(const qp_settings& opts, const gid_entry& gid,
                                             const endpoint& local, const endpoint& remote);

/// INIT -> RTR -> RTS with `t`, narrated; `mtu_source` says where the path
/// MTU came from.
RCQ_DECL qp<state::rts> walk_to_rts(qp<state::init>&& initialized, const transition_attrs& t,
                                    const std::string& mtu_source, const narrator& say);

/// Refuses, before anything is opened, every value of the QP settings
/// `opts` that no device takes, with EINVAL naming `type` (the options
/// type) and the field. What depends on the device, such as a GID index past
/// its table or a depth past its limits, is refused by the step that meets it.
RCQ_DECL void check_qp_settings(const qp_settings& opts, const char* type);

/// "ours 1024, the peer's 4096": where the agreed path MTU came from.
RCQ_DECL std::string mtu_source(const endpoint& local, const endpoint& remote);

/// An endpoint in one line, for the narration.
RCQ_DECL std::string describe(const endpoint& e);

/// The endpoint exchange through `h`, narrated as the connection does.
template <class H>
endpoint exchange_endpoints(H& h, const endpoint& local, const narrator& say) {
    say(sending_line(describe_policy(h), local));
    endpoint remote = h.exchange(local);
    say("handshake: received peer endpoint  " + describe(remote));
    return remote;
}

} // namespace rcq::detail

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/detail/qp_setup.ipp>
#endif
