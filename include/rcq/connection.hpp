// rcq/connection.hpp - one connected RC queue pair, composed from policies.
#pragma once

#include <rcq/agreement.hpp>
#include <rcq/buffer/owned.hpp>
#include <rcq/cq.hpp>
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

namespace rcq {

/// Run-time settings of a connection; every field has a working default.
struct connection_options {
    std::string device;           // empty: the first device
    std::uint8_t port = 1;        // ports count from 1
    std::optional<int> gid_index; // empty: the port's RoCE v2 IPv4 GID
    qp_caps caps{};
    int cq_depth = 128;
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
    std::optional<int> responder_resources;
    /// The GRH traffic class of every packet (DSCP << 2 | ECN; e.g. DSCP 26
    /// is 104) and the service level (0-15, the VLAN priority on RoCE), for
    /// networks that give RoCE a lossless (PFC) class.
    std::uint8_t traffic_class = 0;
    std::uint8_t service_level = 0;
    /// Transport retries and receiver-not-ready retries (rcq::rts_attrs
    /// says why 6 and 6); 7 means "for ever" (on rxe also for retry_cnt),
    /// which never reports a dead peer or a missing receive.
    std::uint8_t retry_cnt = rts_attrs{}.retry_cnt;
    std::uint8_t rnr_retry = rts_attrs{}.rnr_retry;
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
/// Neither copyable nor movable (the QP refers to the CQ and the buffer by
/// address): hold it where it is made, or in a unique_ptr. Not thread safe.
/// Every blocking step is bounded: the handshake by its own timeout, wait()
/// by completion_timeout.
template <class... Policies>
class connection {
    using bag = detail::policy_bag<poll::busy, buffer::owned<>, handshake::tcp, Policies...>;

public:
    using poll_type = typename bag::poll;
    using buffer_type = typename bag::buffer;
    using handshake_type = typename bag::handshake;
    using buffer_config = typename buffer_type::config;

    explicit connection(handshake_type handshake, const connection_options& opts = {},
                        const buffer_config& buffer_cfg = {})
        : out_(opts.narrate),
          timeout_(opts.completion_timeout),
          own_ctx_(open_device(opts, buffer_cfg)),
          ctx_(own_ctx_ ? own_ctx_->get() : borrowed_pd(buffer_cfg)->context),
          port_(query_port(ctx_, opts.port)),
          gid_(pick_gid(opts, peer_family_of(handshake))),
          own_pd_(own_ctx_ ? std::optional<pd>(make_pd()) : std::nullopt),
          pd_(own_pd_ ? own_pd_->get() : borrowed_pd(buffer_cfg)),
          buffer_(make_buffer(buffer_cfg, static_cast<int>(opts.remote_access))),
          poll_(ctx_),
          cq_(make_cq(opts)),
          handshake_(std::move(handshake)),
          qp_(establish(opts)) {}

    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    /// The registered buffer that post_send/post_recv offsets refer to.
    std::span<std::byte> buffer() const noexcept { return buffer_.bytes(); }
    const buffer_type& buffer_policy() const noexcept { return buffer_; }
    const endpoint& local() const noexcept { return local_; }
    const endpoint& remote() const noexcept { return remote_; }
    const gid_entry& gid() const noexcept { return gid_; }
    ibv_context* device() const noexcept { return ctx_; }
    ibv_pd* protection_domain() const noexcept { return pd_; }
    const cq& completion_queue() const noexcept { return cq_; }
    /// The typed QP, for posting work requests of one's own.
    qp<state::rts>& queue_pair() noexcept { return qp_; }

    /// The go-ahead: returns once both sides called it. Call it after posting
    /// the receives the peer's first sends will land in.
    void ready() {
        say("handshake: waiting for the peer's go-ahead");
        handshake_.barrier();
        say("handshake: both sides ready; the peer's receives are posted");
    }

    /// SEND of `length` bytes at `offset` in the buffer, signaled. Returns 0
    /// or the errno value of ibv_post_send. Bounds are the caller's to keep.
    [[nodiscard]] RCQ_ALWAYS_INLINE int post_send(std::size_t offset, std::uint32_t length,
                                                  std::uint64_t wr_id = 0) noexcept {
        const ibv_sge sge = rcq::local(buffer_, offset, length);
        send_op wr(sge, wr_id);
        return qp_.post_send(wr);
    }

    /// RECV into `length` bytes at `offset` in the buffer.
    [[nodiscard]] RCQ_ALWAYS_INLINE int post_recv(std::size_t offset, std::uint32_t length,
                                                  std::uint64_t wr_id = 0) noexcept {
        const ibv_sge sge = rcq::local(buffer_, offset, length);
        recv_wr wr(sge, wr_id);
        return qp_.post_recv(wr);
    }

    /// Waits for the next completion, at most completion_timeout. Throws
    /// rcq::error on timeout, on a polling failure, and for a completion
    /// whose status is not success (with its status text and WR id).
    /// With a handshake that offers a liveness signal (peer_gone()), a wait
    /// that finds nothing looks at it once a second and throws
    /// (ECONNRESET) as soon as the peer is known to have gone, instead of
    /// waiting out the timeout; an error completion then says so too.
    ibv_wc wait(std::string_view what = "a completion") {
        ibv_wc wc{};
        const deadline until = deadline::after(timeout_);
        int n = 0;
        for (;;) {
            const deadline slice =
                has_liveness_signal && until.at() - deadline::clock::now() > liveness_period
                    ? deadline::after(liveness_period)
                    : until;
            n = poll_.wait(cq_, std::span<ibv_wc>(&wc, 1), slice);
            if (n != 0 || until.expired()) break;
            if (peer_gone())
                throw_error("no completion for " + std::string(what) + ": the peer has gone",
                            gone_hint, ECONNRESET);
        }
        if (n < 0)
            throw_error("polling the CQ while waiting for " + std::string(what), {}, -n);
        if (n == 0)
            throw_error("no completion for " + std::string(what) + " within " +
                            std::to_string(timeout_.count()) + " ms",
                        peer_gone() ? gone_hint
                                    : "is the peer still running, and did it post a matching receive?",
                        ETIMEDOUT);
        if (wc.status != IBV_WC_SUCCESS && peer_gone()) {
            try {
                check_completion(wc, what);
            } catch (const error& e) {
                throw error(e.code(), e.step(), std::string(gone_hint) + "; " + e.hint());
            }
        }
        check_completion(wc, what);
        return wc;
    }

    /// A liveness signal, where the handshake offers one (the TCP handshake
    /// keeps its connection open and sees the peer's process end at once):
    /// true when the peer is known to have gone, false when it is not known.
    /// Costs a system call; never blocks.
    bool peer_gone() const noexcept {
        if constexpr (has_liveness_signal)
            return handshake_.peer_closed();
        else
            return false;
    }

private:
    static constexpr bool has_liveness_signal = requires(const handshake_type& h) {
        { h.peer_closed() } -> std::same_as<bool>;
    };
    static constexpr std::chrono::seconds liveness_period{1};
    static constexpr const char* gone_hint =
        "the peer closed its handshake connection: its process has ended";

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

    // An optional count option, or min(16, the device's limit); over 255 or
    // over the limit is refused.
    std::uint8_t depth(std::optional<int> asked, int limit, const char* what,
                       const char* limit_name) const {
        if (!asked) return static_cast<std::uint8_t>(std::clamp(limit, 0, 16));
        if (*asked < 0)
            throw_invalid(std::string(what) + " " + std::to_string(*asked) + " is negative",
                          "ask for 0 or more");
        if (*asked > 255 || *asked > limit)
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

    static ibv_pd* borrowed_pd(const buffer_config& cfg) {
        if constexpr (detail::brings_own_pd<buffer_type>)
            return buffer_type::protection_domain(cfg);
        else
            return nullptr;
    }

    std::optional<context> open_device(const connection_options& opts,
                                       const buffer_config& cfg) const {
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
            throw_error(name + " port " + std::to_string(opts.port) + " is " +
                            std::string(port_state_name(port_.state)) + ", not ACTIVE",
                        "check the link: `ibv_devinfo -d " + name + "`", ENETDOWN);
        say("port " + std::to_string(opts.port) + ": ACTIVE, active MTU " +
            std::to_string(mtu_bytes(port_.active_mtu)) + ", LID " + std::to_string(port_.lid));
        gid_entry g = choose_gid(ctx_, opts.port, opts.gid_index, peer);
        const char* family = peer == address_family::ipv4   ? " for an IPv4 peer"
                             : peer == address_family::ipv6 ? " for an IPv6 peer"
                                                            : "";
        say("GID index " + std::to_string(g.index) + " (" + g.kind() + "): " + g.address() +
            (g.netdev().empty() ? "" : " on " + g.netdev()) +
            (opts.gid_index ? "" : ", chosen automatically" + std::string(family)));
        if (g.is_link_local())
            say("note: GID " + g.address() + " is link-local: it reaches only peers on the same "
                "Ethernet segment" +
                (opts.gid_index ? std::string()
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

        auto initialized = std::move(fresh).to_init({.port_num = opts.port,
                                                     .access = opts.remote_access});
        say("QP RESET -> INIT");

        local_.qpn = initialized.qp_num();
        local_.psn = std::random_device{}() & 0xffffff;
        local_.lid = port_.lid;
        local_.gid = gid_.gid;
        local_.mtu = static_cast<std::uint16_t>(mtu_bytes(port_.active_mtu));
        if (opts.max_mtu) {
            if (!mtu_from_bytes(static_cast<unsigned>(*opts.max_mtu)))
                throw_invalid("max_mtu " + std::to_string(*opts.max_mtu) + " is not a path MTU",
                              "choose 256, 512, 1024, 2048 or 4096");
            local_.mtu = std::min(local_.mtu, static_cast<std::uint16_t>(*opts.max_mtu));
        }
        if (opts.service_level > 15)
            throw_invalid("service level " + std::to_string(opts.service_level) +
                              " is out of range", "choose 0 to 15");
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
        const agreed_settings agreed = agree(local_, remote_);

        auto ready_to_receive = std::move(initialized).to_rtr({
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
        });
        say("QP INIT -> RTR (path MTU " + std::to_string(mtu_bytes(agreed.path_mtu)) + ": ours " +
            std::to_string(local_.mtu) + ", the peer's " + std::to_string(remote_.mtu) +
            "; remote QPN 0x" + detail::hex(remote_.qpn & 0xffffff) + "; accepting " +
            std::to_string(agreed.max_dest_rd_atomic) + " READs/atomics outstanding" +
            (opts.traffic_class || opts.service_level
                 ? "; traffic class " + std::to_string(opts.traffic_class) + ", SL " +
                       std::to_string(opts.service_level)
                 : std::string()) +
            ")");

        const rts_attrs rts{.sq_psn = local_.psn,
                            .retry_cnt = opts.retry_cnt,
                            .rnr_retry = opts.rnr_retry,
                            .max_rd_atomic = agreed.max_rd_atomic};
        auto ready_to_send = std::move(ready_to_receive).to_rts(rts);
        say("QP RTR -> RTS (ACK timeout " + std::to_string(rts.timeout) + ", retry_cnt " +
            std::to_string(rts.retry_cnt) + ", rnr_retry " + std::to_string(rts.rnr_retry) +
            ", up to " + std::to_string(rts.max_rd_atomic) + " READs/atomics outstanding)");
        return ready_to_send;
    }

    static std::string describe(const endpoint& e) {
        return "QPN 0x" + detail::hex(e.qpn) + ", PSN 0x" + detail::hex(e.psn) + ", LID " + std::to_string(e.lid) +
               ", GID " + gid_entry{.gid = e.gid}.address();
    }

    std::ostream* out_;
    std::chrono::milliseconds timeout_;
    // Declaration order is construction order; destruction runs backwards,
    // so the QP goes first and the device last, as verbs requires.
    std::optional<context> own_ctx_; // empty when the buffer brings its own PD
    ibv_context* ctx_;
    ibv_port_attr port_;
    gid_entry gid_;
    std::optional<pd> own_pd_;
    ibv_pd* pd_;
    buffer_type buffer_;
    poll_type poll_; // may own a completion channel, which must outlive the CQ
    cq cq_;
    handshake_type handshake_;
    endpoint local_{};
    endpoint remote_{};
    qp<state::rts> qp_;
};

} // namespace rcq
