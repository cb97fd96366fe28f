// rcq/connection.hpp - one connected RC queue pair, composed from policies.
#pragma once

#include <rcq/agreement.hpp>
#include <rcq/buffer/owned.hpp>
#include <rcq/cq.hpp>
#include <rcq/deadline.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/detail/policy_bag.hpp>
#include <rcq/device.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/gid.hpp>
#include <rcq/handshake/tcp.hpp>
#include <rcq/pd.hpp>
#include <rcq/poll/busy.hpp>
#include <rcq/qp.hpp>
#include <rcq/work_completion.hpp>
#include <rcq/wr.hpp>

#include <infiniband/verbs.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <sys/socket.h>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace rcq {

/// Run-time settings of a connection; every field has a working default.
struct connection_options {
    std::string device; ///< The device to open; empty: the first device.
    std::uint8_t port = 1; ///< The port; ports count from 1.
    std::optional<int> gid_index; ///< The GID index; empty: the port's RoCE v2 IPv4 GID.
    qp_caps caps{}; ///< The QP's queue sizes and options.
    int cq_depth = 128; ///< Entries of the completion queue.
    /// IBV_ACCESS_REMOTE_* the peer gets on our buffer (on the QP and on the
    /// buffer's registration). None by default; when set, the buffer's
    /// address, rkey and length travel with our endpoint.
    unsigned remote_access = 0;
    /// Largest path MTU to use, in bytes (256, 512, 1024, 2048 or 4096);
    /// empty: the port's active MTU. Each side's value travels in its
    /// endpoint and both use the smaller, so hosts with different Ethernet
    /// MTUs agree on one that both paths carry.
    std::optional<int> max_mtu;
    /// RDMA READs and atomics this side may have outstanding (initiator
    /// depth), and how many it accepts from the peer (responder resources).
    /// Empty: 16, or the device's limit (max_qp_init_rd_atom, max_qp_rd_atom)
    /// when lower; a value above the limit is refused. Each travels in the
    /// endpoint, and each side's initiator depth is cut to the other's
    /// responder resources, as the RDMA CM does.
    std::optional<int> initiator_depth;
    std::optional<int> responder_resources; ///< See initiator_depth.
    /// The GRH traffic class of every packet (DSCP << 2 | ECN; e.g. DSCP 26
    /// is 104) and the service level (0-15, the VLAN priority on RoCE), for
    /// networks that give RoCE a lossless (PFC) class.
    std::uint8_t traffic_class = 0;
    std::uint8_t service_level = 0; ///< See traffic_class.
    /// Transport retries and receiver-not-ready retries (rcq::rts_attrs
    /// says why 6 and 6); 7 means "for ever" (on rxe also for retry_cnt),
    /// which never reports a dead peer or a missing receive.
    std::uint8_t retry_cnt = rts_attrs{}.retry_cnt;
    std::uint8_t rnr_retry = rts_attrs{}.rnr_retry; ///< See retry_cnt.
    /// How long wait() waits for one completion (the teaching program's 5 s).
    std::chrono::milliseconds completion_timeout = std::chrono::seconds(5);
    /// Where to narrate each step (e.g. &std::cout), or nullptr for silence.
    std::ostream* narrate = nullptr;
};

namespace detail {
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
} // namespace detail

/// Opens a device, registers a buffer, creates a CQ and an RC QP, swaps
/// endpoints with the peer through the handshake policy and brings the QP to
/// RTS: the whole set-up of an RC program in one constructor.
///
/// `Policies` are any of rcq::poll::*, rcq::buffer::*, rcq::handshake::* or
/// the caller's own (see rcq/policy.hpp), in any order, at most one per
/// category; left-out categories default to poll::busy, buffer::owned<4096>
/// and handshake::tcp.
///
///     rcq::connection<> conn(rcq::handshake::tcp::server(18515));
///     if (conn.post_recv(0, 64) != 0) ...   // receives go first,
///     conn.ready();                         // then the go-ahead, then sends.
///
/// Sends and receives complete on one CQ. wait() returns whichever completion
/// comes next; wait_recv() waits for the next receive and wait_for(wr_id)
/// for one work request, setting the others aside (up to stash_capacity, no
/// allocation) for later waits, which see them in the order they completed.
///
/// Neither copyable nor movable: the verbs objects it owns would survive a
/// move (they live outside it), but a moved-from connection would be one
/// without a QP whose every call has to be checked; rcq keeps it always
/// connected instead. Hold it where it is made, or in a unique_ptr to pass it
/// around. Not thread safe.
/// Every blocking step is bounded: the handshake by its own timeout, wait()
/// by completion_timeout.
template <class... Policies>
class connection {
    using bag = detail::policy_bag<poll::busy, buffer::owned<>, handshake::tcp, Policies...>;

public:
    /// The poll policy in use (rcq::poll::busy unless given).
    using poll_type = typename bag::poll;
    /// The buffer policy in use (rcq::buffer::owned<4096> unless given).
    using buffer_type = typename bag::buffer;
    /// The handshake policy in use (rcq::handshake::tcp unless given).
    using handshake_type = typename bag::handshake;
    /// The buffer policy's settings.
    using buffer_config = typename buffer_type::config;

    /// Does the whole set-up, narrating each step to `opts.narrate`; throws
    /// rcq::error naming the step that failed.
    explicit connection(handshake_type handshake, const connection_options& opts = {},
                        const buffer_config& buffer_cfg = {})
        : out_(checked(opts).narrate),
          timeout_(opts.completion_timeout),
          handshake_(std::move(handshake)),
          own_ctx_(open_device(opts, buffer_cfg)),
          ctx_(own_ctx_ ? own_ctx_->get() : given_context(buffer_cfg)),
          port_(query_port(ctx_, port_num(opts))),
          gid_(pick_gid(opts, peer_family_of(handshake_))),
          own_pd_(borrowed_pd(buffer_cfg) ? std::nullopt : std::optional<pd>(make_pd())),
          pd_(own_pd_ ? own_pd_->get() : borrowed_pd(buffer_cfg)),
          buffer_(make_buffer(buffer_cfg, static_cast<int>(opts.remote_access))),
          poll_(ctx_),
          cq_(make_cq(opts)),
          qp_(establish(opts)) {}

    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    /// The registered buffer that post_send/post_recv offsets refer to.
    std::span<std::byte> buffer() const noexcept { return buffer_.bytes(); }
    /// The buffer policy, e.g. for its registration.
    const buffer_type& buffer_policy() const noexcept { return buffer_; }
    /// Our endpoint, as sent to the peer.
    const endpoint& local() const noexcept { return local_; }
    /// The peer's endpoint, as received.
    const endpoint& remote() const noexcept { return remote_; }
    /// The local GID in use.
    const gid_entry& gid() const noexcept { return gid_; }
    /// The device context.
    ibv_context* device() const noexcept { return ctx_; }
    /// The protection domain the buffer and QP belong to.
    ibv_pd* protection_domain() const noexcept { return pd_; }
    /// The completion queue shared by sends and receives.
    const cq& completion_queue() const noexcept { return cq_; }
    /// The typed QP, for posting work requests of one's own.
    qp<state::rts>& queue_pair() noexcept { return qp_; }

    /// The go-ahead: returns once both sides called it. Call it after posting
    /// the receives the peer's first sends will land in.
    void ready() {
        if constexpr (detail::handshake_drives_the_qp<handshake_type>) {
            handshake_.barrier();
            say("handshake: no go-ahead to exchange; a SEND that arrives before the peer's RECV "
                "is retried (rnr_retry 7)");
            return;
        }
        say("handshake: waiting for the peer's go-ahead");
        try {
            handshake_.barrier();
        } catch (const error& e) {
            const std::string peer_hint = "the peer may never have called ready() (it must, "
                                          "once its receives are posted), or it stopped";
            throw error(e.code(), e.step(), e.hint().empty() ? peer_hint : e.hint() + "; or " + peer_hint);
        }
        say("handshake: both sides ready; the peer's receives are posted");
    }

    /// The handshake policy, e.g. to ask rdma_cm whether the peer disconnected.
    handshake_type& handshake() noexcept { return handshake_; }

    /// SEND of `length` bytes at `offset` in the buffer, signaled. Returns 0,
    /// ERANGE when offset + length reaches past buffer() (nothing is posted;
    /// checked always: two comparisons), or the errno value of ibv_post_send.
    [[nodiscard]] RCQ_ALWAYS_INLINE int post_send(std::size_t offset, std::uint32_t length,
                                                  std::uint64_t wr_id = 0) noexcept {
        if (!in_buffer(offset, length)) [[unlikely]] return ERANGE;
        const ibv_sge sge = rcq::local(buffer_, offset, length);
        send_op wr(sge, wr_id);
        const int rc = qp_.post_send(wr);
        posted_ += rc == 0;
        return rc;
    }

    /// RECV into `length` bytes at `offset` in the buffer; returns as post_send.
    [[nodiscard]] RCQ_ALWAYS_INLINE int post_recv(std::size_t offset, std::uint32_t length,
                                                  std::uint64_t wr_id = 0) noexcept {
        if (!in_buffer(offset, length)) [[unlikely]] return ERANGE;
        const ibv_sge sge = rcq::local(buffer_, offset, length);
        recv_wr wr(sge, wr_id);
        const int rc = qp_.post_recv(wr);
        posted_ += rc == 0;
        return rc;
    }

    /// How many completions wait_recv() and wait_for() can set aside for
    /// later waits while looking for the one they want.
    static constexpr std::size_t stash_capacity = 32;

    /// Waits for the next completion, at most completion_timeout: the oldest
    /// one set aside by wait_recv()/wait_for(), if any, else the CQ's next.
    /// Throws rcq::error on timeout, on a polling failure, and for a
    /// completion whose status is not success (with its status text and WR
    /// id). `what` names the wait in those errors. A completion already in
    /// the CQ is taken without reading the clock.
    ibv_wc wait(std::string_view what = "a completion") {
        if (stashed_ != 0) return take(0);
        return poll_one(what, nullptr);
    }

    /// Waits for the next receive completion (RECV, or RECV_RDMA_WITH_IMM),
    /// at most completion_timeout. Send-side completions met on the way are
    /// set aside, in order, for later waits; nothing is lost. Errors as for
    /// wait(), plus ENOBUFS when stash_capacity completions are already set
    /// aside (checked before polling, so the CQ keeps the rest): claim them
    /// with wait() first.
    ibv_wc wait_recv(std::string_view what = "a receive") {
        return wait_until([](const ibv_wc& wc) { return (wc.opcode & IBV_WC_RECV) != 0; }, what);
    }

    /// Waits for the completion of the work request posted with `wr_id`, at
    /// most completion_timeout; other completions met on the way are set
    /// aside for later waits, as in wait_recv(). A failed completion of
    /// another work request is thrown at once: after it the QP is in ERROR
    /// and the one waited for can only be flushed. A work request posted
    /// unsignaled has no completion to wait for.
    ibv_wc wait_for(std::uint64_t wr_id, std::string_view what = "a work request") {
        return wait_until([wr_id](const ibv_wc& wc) { return wc.wr_id == wr_id; }, what);
    }

    /// How many completions are set aside for later waits.
    std::size_t stashed() const noexcept { return stashed_; }

    /// The poll policy, e.g. to reach a custom poller's state.
    poll_type& poll_policy() noexcept { return poll_; }
    /// The poll policy (read-only).
    const poll_type& poll_policy() const noexcept { return poll_; }

    /// A liveness signal, where the handshake offers one: true when the peer
    /// is known to have gone, false when that is not known. The TCP handshake
    /// keeps its connection open and sees the peer's process end at once; the
    /// RDMA CM handshake sees RDMA_CM_EVENT_DISCONNECTED. Costs a system
    /// call; never blocks. A wait that finds nothing looks at it once a
    /// second and throws (ECONNRESET) as soon as the peer has gone, instead
    /// of waiting out completion_timeout; an error completion then says so.
    bool peer_gone() {
        if constexpr (requires { { handshake_.peer_closed() } -> std::same_as<bool>; })
            return handshake_.peer_closed();
        else if constexpr (requires { { handshake_.peer_disconnected() } -> std::same_as<bool>; })
            return handshake_.peer_disconnected();
        else
            return false;
    }

private:
    static constexpr bool has_liveness_signal =
        requires(handshake_type& h) { { h.peer_closed() } -> std::same_as<bool>; } ||
        requires(handshake_type& h) { { h.peer_disconnected() } -> std::same_as<bool>; };
    static constexpr std::chrono::seconds liveness_period{1};
    // What the liveness signal saw, for errors.
    static constexpr const char* gone_hint =
        requires(handshake_type& h) { h.peer_disconnected(); }
            ? "the peer disconnected (RDMA_CM_EVENT_DISCONNECTED)"
            : "the peer closed its handshake connection: its process has ended";

    static address_family peer_family_of(const handshake_type& h) {
        if constexpr (requires { { h.peer_family() } -> std::convertible_to<int>; }) {
            const int family = h.peer_family();
            return family == AF_INET    ? address_family::ipv4
                   : family == AF_INET6 ? address_family::ipv6
                                        : address_family::any;
        } else {
            return address_family::any;
        }
    }

    // An optional count option, or min(16, the device's limit); over the
    // limit is refused (checked() refused what is outside 0 to 255).
    std::uint8_t depth(std::optional<int> asked, int limit, const char* what,
                       const char* limit_name) const {
        if (!asked) return static_cast<std::uint8_t>(std::clamp(limit, 0, 16));
        if (*asked > limit)
            throw_invalid(std::string(what) + " " + std::to_string(*asked) + " is more than " +
                              device_name(ctx_) + " allows (" + limit_name + " " +
                              std::to_string(limit) + ")",
                          "ask for at most " + std::to_string(std::min(limit, 255)) +
                              ", or leave it unset for the largest the device offers up to 16");
        return static_cast<std::uint8_t>(*asked);
    }

    void say(const std::string& line) const {
        if (out_ != nullptr) *out_ << "[rcq] " << line << '\n' << std::flush;
    }

    // The narration names what actually completed, whatever the wait was for.
    void narrate_completion(const ibv_wc& wc) const {
        if (out_ == nullptr) return;
        std::string line = std::string("completion: ") + to_string(wc.opcode) + ", wr_id " +
                           std::to_string(wc.wr_id);
        if ((wc.opcode & IBV_WC_RECV) != 0) line += ", " + std::to_string(wc.byte_len) + " bytes";
        say(line);
    }

    // The next completion from the CQ; the deadline is `until`, or (null)
    // completion_timeout from when the CQ is found empty.
    ibv_wc poll_one(std::string_view what, const deadline* until) {
        ibv_wc wc{};
        const std::span<ibv_wc> one(&wc, 1);
        int n = cq_.poll(one);
        if (n == 0) {
            const deadline end = until != nullptr ? *until : deadline::after(timeout_);
            for (;;) {
                // With a liveness signal, wait in slices of liveness_period and look at it
                // between them.
                const deadline slice =
                    has_liveness_signal && end.at() - deadline::clock::now() > liveness_period
                        ? deadline::after(liveness_period)
                        : end;
                n = poll_.wait(cq_, one, slice);
                if (n != 0 || end.expired()) break;
                if (peer_gone())
                    throw_error("no completion for " + std::string(what) + ": the peer has gone",
                                gone_hint, ECONNRESET);
            }
        }
        if (n < 0)
            throw_error("polling the CQ while waiting for " + std::string(what) +
                            " failed (result " + std::to_string(n) + ")",
                        "ibv_poll_cq returns a negative value when the provider fails (a CQ that "
                        "overran, i.e. cq_depth too small, is one cause), a poll policy -errno "
                        "for its own failures",
                        EIO);
        if (n == 0) {
            if (posted_ == 0)
                throw_error("no completion for " + std::string(what) + " within " +
                                detail::budget_text(timeout_) + ": nothing was outstanding",
                            "every post_send/post_recv of this connection has completed already "
                            "(requests posted on queue_pair() directly are not counted): post "
                            "before waiting",
                            ETIMEDOUT);
            throw_error("no completion for " + std::string(what) + " within " +
                            detail::budget_text(timeout_),
                        peer_gone() ? gone_hint
                                    : "is the peer still running, and did it post a matching receive?",
                        ETIMEDOUT);
        }
        posted_ -= posted_ != 0;
        if (wc.status != IBV_WC_SUCCESS && peer_gone()) {
            try {
                check_completion(wc, what);
            } catch (const error& e) {
                throw error(e.code(), e.step(), std::string(gone_hint) + "; " + e.hint());
            }
        }
        if (wc.status == IBV_WC_RETRY_EXC_ERR) {
            // The peer is not known to have gone: the address it gave may be
            // one this host cannot reach, which only the transport finds out.
            try {
                check_completion(wc, what);
            } catch (const error& e) {
                throw error(e.code(), e.step(),
                            "no ACK came from the peer's GID " + gid_entry{.gid = remote_.gid}.address() +
                                " (QPN 0x" + detail::hex(remote_.qpn) +
                                "): check that this host reaches that address (ping it) and that it "
                                "is the peer's RoCE address, not one behind NAT or on another "
                                "network; " +
                                e.hint());
            }
        }
        check_completion(wc, what);
        narrate_completion(wc);
        return wc;
    }

    bool in_buffer(std::size_t offset, std::uint32_t length) const noexcept {
        const std::size_t size = buffer_.bytes().size();
        return offset <= size && length <= size - offset;
    }

    // Settings that can be refused before anything is opened: every value a
    // field cannot take on any device. (What depends on the device, such as
    // a GID index past its table or a depth past its limits, is refused by
    // the step that meets it.)
    static const connection_options& checked(const connection_options& opts) {
        auto refuse = [](const std::string& what, const std::string& hint) {
            throw_invalid("connection_options::" + what, hint);
        };
        if (opts.port == 0) refuse("port 0 is not a port", "ports count from 1; most devices have only port 1");
        if (opts.gid_index && (*opts.gid_index < 0 || *opts.gid_index > 255))
            refuse("gid_index " + std::to_string(*opts.gid_index) + " is out of range",
                   "a GID index is 0 to 255 (the address vector's sgid_index is 8 bits); leave it "
                   "unset for the port's RoCE v2 GID");
        if (opts.max_mtu && !mtu_from_bytes(static_cast<unsigned>(std::max(*opts.max_mtu, 0))))
            refuse("max_mtu " + std::to_string(*opts.max_mtu) + " is not a path MTU",
                   "choose 256, 512, 1024, 2048 or 4096");
        for (auto [value, name] : {std::pair{opts.initiator_depth, "initiator_depth"},
                                   std::pair{opts.responder_resources, "responder_resources"}})
            if (value && (*value < 0 || *value > 255))
                refuse(std::string(name) + " " + std::to_string(*value) + " is out of range",
                       "ask for 0 to 255 (and at most what the device allows), or leave it unset");
        if (opts.service_level > 15)
            refuse("service_level " + std::to_string(opts.service_level) + " is out of range",
                   "choose 0 to 15");
        if (opts.retry_cnt > 7 || opts.rnr_retry > 7)
            refuse("retry_cnt " + std::to_string(opts.retry_cnt) + " / rnr_retry " +
                       std::to_string(opts.rnr_retry) + ": out of range",
                   "both are 3-bit counts, 0 to 7 (7: retry for ever)");
        constexpr unsigned remote_bits =
            IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
        if ((opts.remote_access & ~remote_bits) != 0)
            refuse("remote_access 0x" + detail::hex(opts.remote_access) + " has bits other than "
                       "IBV_ACCESS_REMOTE_WRITE, _READ and _ATOMIC",
                   "give only the remote access the peer gets; local write is always on");
        if (opts.completion_timeout <= std::chrono::milliseconds::zero())
            refuse("completion_timeout " + std::to_string(opts.completion_timeout.count()) +
                       " ms: it must be positive",
                   "for no time limit, give std::chrono::milliseconds::max()");
        const std::uint64_t needed =
            std::uint64_t(opts.caps.max_send_wr) + opts.caps.max_recv_wr;
        if (opts.cq_depth <= 0 || std::uint64_t(opts.cq_depth) < needed)
            throw_invalid("connection_options::cq_depth " + std::to_string(opts.cq_depth) +
                              " is less than caps.max_send_wr + caps.max_recv_wr (" +
                              std::to_string(needed) + "): the one CQ takes the completions of "
                              "both queues and could overrun, which is fatal to the QP",
                          "set cq_depth >= " + std::to_string(needed) + ", or shorten the queues");
        return opts;
    }

    // Removes and returns the stashed completion at `i`, keeping the order.
    ibv_wc take(std::size_t i) noexcept {
        const ibv_wc wc = stash_[i];
        for (std::size_t j = i + 1; j < stashed_; ++j) stash_[j - 1] = stash_[j];
        --stashed_;
        return wc;
    }

    template <class Wanted>
    ibv_wc wait_until(Wanted wanted, std::string_view what) {
        for (std::size_t i = 0; i < stashed_; ++i)
            if (wanted(stash_[i])) return take(i);
        const deadline until = deadline::after(timeout_);
        for (;;) {
            if (stashed_ == stash_.size())
                throw_error("waiting for " + std::string(what) + ": " +
                                std::to_string(stash_.size()) +
                                " completions are already set aside, unclaimed",
                            "claim them with wait() (oldest first) before waiting for a "
                            "particular one",
                            ENOBUFS);
            const ibv_wc wc = poll_one(what, &until);
            if (wanted(wc)) return wc;
            stash_[stashed_++] = wc;
        }
    }

    std::uint8_t port_num(const connection_options& opts) const {
        if constexpr (detail::handshake_drives_the_qp<handshake_type>)
            return handshake_.port_num();
        else
            return opts.port;
    }

    // The context when the connection opens none: the buffer's, else the handshake's.
    ibv_context* given_context(const buffer_config& cfg) {
        if (ibv_pd* given = borrowed_pd(cfg)) return given->context;
        if constexpr (detail::handshake_drives_the_qp<handshake_type>)
            return handshake_.resolve();
        else
            return nullptr;
    }

    static ibv_pd* borrowed_pd(const buffer_config& cfg) {
        if constexpr (detail::brings_own_pd<buffer_type>)
            return buffer_type::protection_domain(cfg);
        else
            return nullptr;
    }

    std::optional<context> open_device(const connection_options& opts,
                                       const buffer_config& cfg) {
        if constexpr (detail::handshake_drives_the_qp<handshake_type>) {
            const std::string how = detail::describe_policy(handshake_);
            say("handshake" + (how.empty() ? "" : " (" + how + ")") + ": resolving the peer");
            ibv_context* cm = handshake_.resolve();
            const std::string name = device_name(cm);
            if (!opts.device.empty() && opts.device != name)
                throw_error("the peer's address resolves to " + name + ", not to " + opts.device,
                            "drop the device option, or give an address on " + opts.device, EINVAL);
            if (ibv_pd* given = borrowed_pd(cfg); given != nullptr && given->context != cm)
                throw_error("the buffer's memory region is on another device context than the "
                            "RDMA CM's (" + name + ")",
                            "register the memory on the connection's context, or use an owned buffer",
                            EINVAL);
            say("using device " + name + ", port " + std::to_string(handshake_.port_num()) +
                ", as the RDMA CM resolved it");
            return std::nullopt;
        }
        if (ibv_pd* given = borrowed_pd(cfg)) {
            const std::string name = device_name(given->context);
            if (!opts.device.empty() && opts.device != name)
                throw_error("the buffer's memory region is on " + name + ", not on " + opts.device,
                            "drop the device option, or register the memory on " + opts.device,
                            EINVAL);
            say("using device " + name + " and the protection domain of the caller's memory region");
            return std::nullopt;
        }
        context ctx = context::open(opts.device);
        say("opened device " + ctx.name());
        return ctx;
    }

    gid_entry pick_gid(const connection_options& opts, address_family peer) const {
        const std::string name = device_name(ctx_);
        if (port_.state != IBV_PORT_ACTIVE)
            throw_error(name + " port " + std::to_string(port_num(opts)) + " is " +
                            std::string(port_state_name(port_.state)) + ", not ACTIVE",
                        "check the link: `ibv_devinfo -d " + name + "`", ENETDOWN);
        say("port " + std::to_string(port_num(opts)) + ": ACTIVE, active MTU " +
            std::to_string(mtu_bytes(port_.active_mtu)) + ", LID " + std::to_string(port_.lid));
        std::optional<int> index = opts.gid_index;
        if constexpr (detail::handshake_drives_the_qp<handshake_type>) index = handshake_.gid_index();
        gid_entry g = choose_gid(ctx_, port_num(opts), index, peer);
        const char* family = peer == address_family::ipv4   ? " for an IPv4 peer"
                             : peer == address_family::ipv6 ? " for an IPv6 peer"
                                                            : "";
        say("GID index " + std::to_string(g.index) + " (" + g.kind() + "): " + g.address() +
            (g.netdev().empty() ? "" : " on " + g.netdev()) +
            (index ? "" : ", chosen automatically" + std::string(family)));
        if (g.is_link_local())
            say("note: GID " + g.address() + " is link-local: it reaches only peers on the same "
                "Ethernet segment" +
                (index ? std::string()
                       : "; the port has no routable RoCE v2 GID of that family (give its "
                         "network device an address)"));
        return g;
    }

    pd make_pd() const {
        pd domain(ctx_);
        say("allocated a protection domain");
        return domain;
    }

    buffer_type make_buffer(const buffer_config& cfg, int remote_access) const {
        buffer_type b(pd_, cfg, remote_access);
        const std::string how = detail::describe_policy(b);
        say((how.empty() ? "buffer ready" : how) + ": " + std::to_string(b.bytes().size()) +
            " bytes, lkey 0x" + detail::hex(b.lkey()) + ", rkey 0x" + detail::hex(b.rkey()));
        return b;
    }

    cq make_cq(const connection_options& opts) {
        cq c = poll_.make_cq(ctx_, opts.cq_depth);
        const std::string how = detail::describe_policy(poll_);
        say("created a completion queue of " + std::to_string(opts.cq_depth) + " entries" +
            (how.empty() ? "" : " (" + how + ")"));
        return c;
    }

    qp<state::rts> establish(const connection_options& opts) {
        qp<state::reset> fresh(pd_, cq_, opts.caps);
        say("created RC queue pair: QPN 0x" + detail::hex(fresh.qp_num()) + ", state RESET");

        init_attrs init{.port_num = opts.port, .access = opts.remote_access};
        if constexpr (detail::handshake_drives_the_qp<handshake_type>)
            init = handshake_.init_attributes(opts.remote_access);
        auto initialized = std::move(fresh).to_init(init);
        say("QP RESET -> INIT");

        local_.qpn = initialized.qp_num();
        local_.psn = std::random_device{}() & 0xffffff;
        local_.lid = port_.lid;
        local_.gid = gid_.gid;
        local_.mtu = static_cast<std::uint16_t>(mtu_bytes(port_.active_mtu));
        if (opts.max_mtu) local_.mtu = std::min(local_.mtu, static_cast<std::uint16_t>(*opts.max_mtu));
        const ibv_device_attr caps = query_device(ctx_);
        local_.initiator_depth = depth(opts.initiator_depth, caps.max_qp_init_rd_atom,
                                       "initiator_depth", "max_qp_init_rd_atom");
        local_.responder_resources = depth(opts.responder_resources, caps.max_qp_rd_atom,
                                           "responder_resources", "max_qp_rd_atom");
        if (opts.remote_access != 0) {
            local_.remote_addr = reinterpret_cast<std::uintptr_t>(buffer_.bytes().data());
            local_.rkey = buffer_.rkey();
            local_.remote_len = buffer_.bytes().size();
        }
        const std::string how = detail::describe_policy(handshake_);
        say("handshake" + (how.empty() ? "" : " (" + how + ")") + ": sending local endpoint  " +
            describe(local_));
        remote_ = handshake_.exchange(local_);
        say("handshake: received peer endpoint  " + describe(remote_));
        rtr_attrs rtr;
        rts_attrs rts;
        if constexpr (detail::handshake_drives_the_qp<handshake_type>) {
            // The CM chose the PSNs, the path, its MTU and the READ depth.
            rtr = handshake_.rtr_attributes();
            rts = handshake_.rts_attributes();
            local_.psn = rts.sq_psn;
        } else {
            const agreed_settings agreed = agree(local_, remote_);
            rtr = {
                .dest_qpn = remote_.qpn,
                .rq_psn = remote_.psn,
                .dlid = remote_.lid,
                .dgid = remote_.gid,
                .sgid_index = static_cast<std::uint8_t>(gid_.index),
                .port_num = opts.port,
                .path_mtu = agreed.path_mtu,
                .traffic_class = opts.traffic_class,
                .sl = opts.service_level,
                .max_dest_rd_atomic = agreed.max_dest_rd_atomic,
            };
            rts = {.sq_psn = local_.psn,
                   .retry_cnt = opts.retry_cnt,
                   .rnr_retry = opts.rnr_retry,
                   .max_rd_atomic = agreed.max_rd_atomic};
        }
        // On RoCE the kernel turns the peer's GID into a next-hop MAC address
        // here (a route, then ARP or neighbour discovery, within 1 s): a GID
        // this host cannot reach fails now, not at the first message.
        auto ready_to_receive = [&] {
            try {
                return std::move(initialized).to_rtr(rtr);
            } catch (const error& e) {
                const int err = e.code().value();
                if (err != ETIMEDOUT && err != ENETUNREACH && err != EHOSTUNREACH && err != ENODATA) throw;
                throw error(e.code(), e.step(),
                            "the kernel found no route or no neighbour (ARP) answer for the peer's GID " +
                                gid_entry{.gid = rtr.dgid}.address() +
                                ": check that this host reaches that address (ping it) and that it is "
                                "the peer's RoCE address; " +
                                e.hint());
            }
        }();
        const std::string mtu_source =
            detail::handshake_drives_the_qp<handshake_type>
                ? std::string(", chosen by the CM")
                : ": ours " + std::to_string(local_.mtu) + ", the peer's " + std::to_string(remote_.mtu);
        say("QP INIT -> RTR (path MTU " + std::to_string(mtu_bytes(rtr.path_mtu)) + mtu_source +
            "; remote QPN 0x" + detail::hex(rtr.dest_qpn & 0xffffff) + "; accepting " +
            std::to_string(rtr.max_dest_rd_atomic) + " READs/atomics outstanding" +
            (rtr.traffic_class || rtr.sl
                 ? "; traffic class " + std::to_string(rtr.traffic_class) + ", SL " +
                       std::to_string(rtr.sl)
                 : std::string()) +
            ")");

        auto ready_to_send = std::move(ready_to_receive).to_rts(rts);
        say("QP RTR -> RTS (ACK timeout " + std::to_string(rts.timeout) + ", retry_cnt " +
            std::to_string(rts.retry_cnt) + ", rnr_retry " + std::to_string(rts.rnr_retry) +
            ", up to " + std::to_string(rts.max_rd_atomic) + " READs/atomics outstanding)");
        if constexpr (detail::handshake_drives_the_qp<handshake_type>) {
            handshake_.established();
            say("handshake: connection established; PSNs chosen by the CM: ours 0x" +
                detail::hex(local_.psn) + ", the peer's 0x" + detail::hex(rtr.rq_psn));
        }
        return ready_to_send;
    }

    static std::string describe(const endpoint& e) {
        return "QPN 0x" + detail::hex(e.qpn) + ", PSN 0x" + detail::hex(e.psn) + ", LID " + std::to_string(e.lid) +
               ", GID " + gid_entry{.gid = e.gid}.address();
    }

    std::ostream* out_;
    std::chrono::milliseconds timeout_;
    // Declaration order is construction order; destruction runs backwards,
    // so the QP goes first and the device last, as verbs requires. The
    // handshake comes first: rdma_cm resolves the device the rest is made on,
    // and its CM identifier must outlive the QP.
    handshake_type handshake_;
    std::optional<context> own_ctx_; // empty when the buffer brings its own PD
    ibv_context* ctx_;
    ibv_port_attr port_;
    gid_entry gid_;
    std::optional<pd> own_pd_;
    ibv_pd* pd_;
    buffer_type buffer_;
    poll_type poll_; // may own a completion channel, which must outlive the CQ
    cq cq_;
    endpoint local_{};
    endpoint remote_{};
    std::size_t posted_ = 0; // posted through post_send/post_recv, not yet waited for
    qp<state::rts> qp_;
    std::array<ibv_wc, stash_capacity> stash_{}; // completions set aside, oldest first
    std::size_t stashed_ = 0;
};

} // namespace rcq
