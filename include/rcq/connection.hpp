// rcq/connection.hpp - one connected RC queue pair, composed from policies.
#pragma once

#include <rcq/config.hpp>

#include <rcq/agreement.hpp>
#include <rcq/buffer/owned.hpp>
#include <rcq/cq.hpp>
#include <rcq/detail/device_core.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/detail/policy_bag.hpp>
#include <rcq/detail/qp_setup.hpp>
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

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <iosfwd>
#include <sys/socket.h>
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
/// Returns `opts` after refusing, with rcq::error (EINVAL) naming the field,
/// every setting that no device takes: those check_qp_settings refuses, and
/// a cq_depth too small for both queues. What depends on the device, such as
/// a GID index past its table, is refused by the step that meets it.
RCQ_DECL const connection_options& check_connection_options(const connection_options& opts);
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
        : out_(detail::check_connection_options(opts).narrate),
          timeout_(opts.completion_timeout),
          handshake_(std::move(handshake)),
          core_(settings(opts, buffer_cfg), buffer_cfg, detail::narrator{out_}),
          qp_(establish(opts)) {}

    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    /// The registered buffer that post_send/post_recv offsets refer to.
    std::span<std::byte> buffer() const noexcept { return core_.buffer.bytes(); }
    /// The buffer policy, e.g. for its registration.
    const buffer_type& buffer_policy() const noexcept { return core_.buffer; }
    /// Our endpoint, as sent to the peer.
    const endpoint& local() const noexcept { return local_; }
    /// The peer's endpoint, as received.
    const endpoint& remote() const noexcept { return remote_; }
    /// The local GID in use.
    const gid_entry& gid() const noexcept { return core_.gid; }
    /// The device context.
    ibv_context* device() const noexcept { return core_.ctx; }
    /// The protection domain the buffer and QP belong to.
    ibv_pd* protection_domain() const noexcept { return core_.pd; }
    /// The completion queue shared by sends and receives.
    const cq& completion_queue() const noexcept { return core_.cq; }
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
        detail::go_ahead(handshake_, detail::narrator{out_});
    }

    /// The handshake policy, e.g. to ask rdma_cm whether the peer disconnected.
    handshake_type& handshake() noexcept { return handshake_; }

    /// SEND of `length` bytes at `offset` in the buffer, signaled. Returns 0,
    /// ERANGE when offset + length reaches past buffer() (nothing is posted;
    /// checked always: two comparisons), or the errno value of ibv_post_send.
    [[nodiscard]] RCQ_ALWAYS_INLINE int post_send(std::size_t offset, std::uint32_t length,
                                                  std::uint64_t wr_id = 0) noexcept {
        if (!in_buffer(offset, length)) [[unlikely]] return ERANGE;
        const ibv_sge sge = rcq::local(core_.buffer, offset, length);
        send_op wr(sge, wr_id);
        const int rc = qp_.post_send(wr);
        posted_ += rc == 0;
        return rc;
    }

    /// RECV into `length` bytes at `offset` in the buffer; returns as post_send.
    [[nodiscard]] RCQ_ALWAYS_INLINE int post_recv(std::size_t offset, std::uint32_t length,
                                                  std::uint64_t wr_id = 0) noexcept {
        if (!in_buffer(offset, length)) [[unlikely]] return ERANGE;
        const ibv_sge sge = rcq::local(core_.buffer, offset, length);
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
    poll_type& poll_policy() noexcept { return core_.poll; }
    /// The poll policy (read-only).
    const poll_type& poll_policy() const noexcept { return core_.poll; }

    /// A liveness signal, where the handshake offers one: true when the peer
    /// is known to have gone, false when that is not known. The TCP handshake
    /// keeps its connection open and sees the peer's process end at once; the
    /// RDMA CM handshake sees RDMA_CM_EVENT_DISCONNECTED. Costs a system
    /// call; never blocks. A wait that finds nothing looks at it once a
    /// second and throws (ECONNRESET) as soon as the peer has gone, instead
    /// of waiting out completion_timeout; an error completion then says so.
    bool peer_gone() { return detail::peer_gone(handshake_); }

private:
    static constexpr bool has_liveness_signal = detail::has_liveness_signal<handshake_type>;
    static constexpr std::chrono::seconds liveness_period{1};
    // What the liveness signal saw, for errors.
    static constexpr const char* gone_hint = detail::gone_hint<handshake_type>;

    void say(const std::string& line) const { detail::narrator{out_}(line); }

    // The narration names what actually completed, whatever the wait was for.
    void narrate_completion(const ibv_wc& wc) const {
        if (out_ != nullptr) say(detail::completion_line(wc));
    }

    // The next completion from the CQ; the deadline is `until`, or (null)
    // completion_timeout from when the CQ is found empty.
    ibv_wc poll_one(std::string_view what, const deadline* until) {
        ibv_wc wc{};
        const std::span<ibv_wc> one(&wc, 1);
        int n = core_.cq.poll(one);
        if (n == 0) {
            const deadline end = until != nullptr ? *until : deadline::after(timeout_);
            for (;;) {
                // With a liveness signal, wait in slices of liveness_period and look at it
                // between them.
                const deadline slice =
                    has_liveness_signal && end.at() - deadline::clock::now() > liveness_period
                        ? deadline::after(liveness_period)
                        : end;
                n = core_.poll.wait(core_.cq, one, slice);
                if (n != 0 || end.expired()) break;
                if (peer_gone()) detail::throw_peer_gone(what, gone_hint);
            }
        }
        if (n < 0) detail::throw_poll_failed(what, n);
        if (n == 0) {
            if (posted_ == 0) detail::throw_nothing_outstanding(what, timeout_);
            detail::throw_no_completion(
                what, timeout_,
                peer_gone() ? gone_hint
                            : "is the peer still running, and did it post a matching receive?");
        }
        posted_ -= posted_ != 0;
        if (wc.status != IBV_WC_SUCCESS && peer_gone())
            detail::check_completion_of_gone_peer(wc, what, gone_hint);
        // The peer is not known to have gone: the address it gave may be one
        // this host cannot reach, which only the transport finds out.
        if (wc.status == IBV_WC_RETRY_EXC_ERR)
            detail::check_completion_without_ack(wc, what, remote_);
        check_completion(wc, what);
        narrate_completion(wc);
        return wc;
    }

    bool in_buffer(std::size_t offset, std::uint32_t length) const noexcept {
        const std::size_t size = core_.buffer.bytes().size();
        return offset <= size && length <= size - offset;
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

    // Where the device core is made: for the RDMA CM, on the context its
    // address resolved to (narrated and checked here); otherwise on the
    // buffer's PD or the device the options name.
    detail::device_settings settings(const connection_options& opts, const buffer_config& cfg) {
        detail::device_settings s{.device = opts.device,
                                  .port = port_num(opts),
                                  .gid_index = opts.gid_index,
                                  .peer = detail::peer_family_of(handshake_),
                                  .remote_access = opts.remote_access,
                                  .cq_depth = opts.cq_depth};
        if constexpr (detail::handshake_drives_the_qp<handshake_type>) {
            const std::string how = detail::describe_policy(handshake_);
            say("handshake" + (how.empty() ? "" : " (" + how + ")") + ": resolving the peer");
            ibv_context* cm = handshake_.resolve();
            const std::string name = device_name(cm);
            if (!opts.device.empty() && opts.device != name)
                throw_error("the peer's address resolves to " + name + ", not to " + opts.device,
                            "drop the device option, or give an address on " + opts.device, EINVAL);
            ibv_pd* given = detail::device_core<poll_type, buffer_type>::borrowed_pd(cfg);
            if (given != nullptr && given->context != cm)
                throw_error("the buffer's memory region is on another device context than the "
                            "RDMA CM's (" + name + ")",
                            "register the memory on the connection's context, or use an owned buffer",
                            EINVAL);
            say("using device " + name + ", port " + std::to_string(handshake_.port_num()) +
                ", as the RDMA CM resolved it");
            s.given = cm;
            s.gid_index = handshake_.gid_index();
        }
        return s;
    }

    qp<state::rts> establish(const connection_options& opts) {
        const detail::narrator narrate{out_};
        init_attrs init{.port_num = opts.port, .access = opts.remote_access};
        if constexpr (detail::handshake_drives_the_qp<handshake_type>)
            init = handshake_.init_attributes(opts.remote_access);
        auto initialized = detail::create_in_init(core_.pd, core_.cq, opts.caps, init, narrate);
        const detail::qp_settings qp_opts = detail::qp_settings_of(opts);
        local_ = detail::local_endpoint(qp_opts, core_.ctx, core_.port, core_.gid,
                                        initialized.qp_num(), core_.buffer.bytes(),
                                        core_.buffer.rkey());
        remote_ = detail::exchange_endpoints(handshake_, local_, narrate);
        detail::transition_attrs t;
        std::string mtu_source;
        if constexpr (detail::handshake_drives_the_qp<handshake_type>) {
            // The CM chose the PSNs, the path, its MTU and the READ depth.
            t = {handshake_.rtr_attributes(), handshake_.rts_attributes()};
            local_.psn = t.rts.sq_psn;
            mtu_source = ", chosen by the CM";
        } else {
            t = detail::agreed_transitions(qp_opts, core_.gid, local_, remote_);
            mtu_source = detail::mtu_source(local_, remote_);
        }
        auto ready_to_send = detail::walk_to_rts(std::move(initialized), t, mtu_source, narrate);
        if constexpr (detail::handshake_drives_the_qp<handshake_type>) {
            handshake_.established();
            say("handshake: connection established; PSNs chosen by the CM: ours 0x" +
                detail::hex(local_.psn) + ", the peer's 0x" + detail::hex(t.rtr.rq_psn));
        }
        return ready_to_send;
    }

    std::ostream* out_;
    std::chrono::milliseconds timeout_;
    // Declaration order is construction order; destruction runs backwards,
    // so the QP goes first and the device last, as verbs requires. The
    // handshake comes first: rdma_cm resolves the device the rest is made on,
    // and its CM identifier must outlive the QP.
    handshake_type handshake_;
    detail::device_core<poll_type, buffer_type> core_;
    endpoint local_{};
    endpoint remote_{};
    std::size_t posted_ = 0; // posted through post_send/post_recv, not yet waited for
    qp<state::rts> qp_;
    std::array<ibv_wc, stash_capacity> stash_{}; // completions set aside, oldest first
    std::size_t stashed_ = 0;
};

} // namespace rcq

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/connection.ipp>
#endif
