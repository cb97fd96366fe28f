// rcq/handshake/rdma_cm.hpp - connecting through the RDMA connection manager
// (librdmacm), the way rping, NVMe over Fabrics and most RoCE software do.
#pragma once

#include <rcq/config.hpp>

#include <rcq/category.hpp>
#include <rcq/deadline.hpp>
#include <rcq/detail/sleep.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/gid.hpp>
#include <rcq/qp.hpp>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>

namespace rcq::handshake {

namespace detail {

/// Private data an RDMA_PS_TCP connect request can carry (the IB CM's 92
/// bytes less the 36 of the RDMA CM's own header); the reply carries 196.
inline constexpr std::size_t cm_request_private_data_max = 56;
inline constexpr std::size_t cm_reply_private_data_max = 196;

/// What rcq puts in the private data: the CM carries QPN, PSN, GID, path
/// MTU and READ depths itself, so only the memory token travels, with the
/// QPN to tie it to the connection. Magic "RCQM", version (u16), QPN (u32),
/// address (u64), rkey (u32), length (u64), big-endian: 30 bytes, padded
/// with zeros by the CM.
inline constexpr std::array<std::byte, 4> cm_token_magic{std::byte{'R'}, std::byte{'C'},
                                                         std::byte{'Q'}, std::byte{'M'}};
inline constexpr std::uint16_t cm_token_version = 1;
inline constexpr std::size_t cm_token_size = 4 + 2 + 4 + 8 + 4 + 8;

static_assert(cm_token_size <= cm_request_private_data_max,
              "rcq's memory token no longer fits in the 56 bytes of private data of an RDMA CM "
              "connect request: move it to a message after the connection");

inline std::array<std::byte, cm_token_size> encode_cm_token(const endpoint& e) {
    using rcq::detail::wire_field;
    std::array<std::byte, cm_token_size> out{};
    std::copy(cm_token_magic.begin(), cm_token_magic.end(), out.begin());
    std::size_t at = 4;
    auto put = [&](auto value) {
        wire_field<decltype(value)>::put(value, out.data() + at);
        at += wire_field<decltype(value)>::size;
    };
    put(cm_token_version);
    put(e.qpn);
    put(e.remote_addr);
    put(e.rkey);
    put(e.remote_len);
    return out;
}

/// Parses the private data of an rcq peer (`bytes`: what the CM delivered,
/// zero padding included) into an endpoint holding the QPN and the memory
/// token. Throws rcq::error (EPROTO) saying what was wrong; never reads
/// outside `bytes`.
inline endpoint decode_cm_token(std::span<const std::byte> bytes) {
    using rcq::detail::wire_field;
    if (bytes.size() < cm_token_size)
        throw_invalid("rdma_cm private data: " + std::to_string(bytes.size()) + " bytes, not the " +
                          std::to_string(cm_token_size) + " of an rcq memory token",
                      "", EPROTO);
    if (!std::equal(cm_token_magic.begin(), cm_token_magic.end(), bytes.begin()))
        throw_invalid("rdma_cm private data: bad magic (expected \"RCQM\")", "", EPROTO);
    const auto version = wire_field<std::uint16_t>::get(bytes.data() + 4);
    if (version != cm_token_version)
        throw_invalid("rdma_cm private data: version " + std::to_string(version) +
                          " not supported (this build speaks version " +
                          std::to_string(cm_token_version) + ")",
                      "build both sides with the same rcq release", EPROTO);
    endpoint e{};
    std::size_t at = 6;
    auto get = [&](auto& field) {
        using T = std::remove_reference_t<decltype(field)>;
        field = wire_field<T>::get(bytes.data() + at);
        at += wire_field<T>::size;
    };
    get(e.qpn);
    get(e.remote_addr);
    get(e.rkey);
    get(e.remote_len);
    return e;
}

struct cm_channel_deleter {
    void operator()(rdma_event_channel* c) const noexcept { rdma_destroy_event_channel(c); }
};
struct cm_id_deleter {
    void operator()(rdma_cm_id* id) const noexcept { rdma_destroy_id(id); }
};
struct cm_event_deleter {
    void operator()(rdma_cm_event* e) const noexcept { rdma_ack_cm_event(e); }
};
using cm_channel_ptr = std::unique_ptr<rdma_event_channel, cm_channel_deleter>;
using cm_id_ptr = std::unique_ptr<rdma_cm_id, cm_id_deleter>;
using cm_event_ptr = std::unique_ptr<rdma_cm_event, cm_event_deleter>;

/// The IB CM's reject reason (IBA 12.6.7.2) that RDMA_CM_EVENT_REJECTED's
/// status carries on InfiniBand and RoCE.
inline constexpr int cm_reject_consumer = 28; // the peer's program called rdma_reject
inline constexpr int cm_reject_invalid_service_id = 8; // nothing listens on that port

inline std::string cm_reject_reason(int status) {
    switch (status) {
    case 1: return "no QP";
    case 3: return "no resources";
    case 4: return "timeout";
    case 5: return "unsupported request";
    case 6: return "invalid communication ID";
    case cm_reject_invalid_service_id: return "invalid service ID: nothing listens there";
    case 9: return "invalid transport type";
    case 10: return "stale connection";
    case 12: return "invalid GID";
    case cm_reject_consumer: return "consumer defined: the peer's program refused";
    case 32: return "invalid MTU";
    case 33: return "insufficient responder resources";
    default: return "see the IB CM reject reasons";
    }
}

} // namespace detail

/// The RDMA connection manager as a handshake policy: the client resolves
/// the server's IP address to a device, GID and route and connects; the
/// server listens on an RDMA CM port and accepts one client. Unlike tcp, file
/// and env, the CM also brings the QP's attributes: rcq::connection opens the
/// device the address resolved to (resolve()), and walks its QP RESET ->
/// INIT -> RTR -> RTS through rcq's typed transitions with the values the CM
/// gives (rdma_init_qp_attr: port, P_Key, path MTU, PSNs, address vector,
/// ACK timeout, retry counts). Two things are rcq's rather than the CM's: the
/// QP's remote access flags (the connection's remote_access; the CM would
/// grant remote READ and WRITE), and the RDMA READ depth, agreed here as the
/// smaller of this device's limits and what the peer offered.
///
/// With `private_data::rcq_endpoint` (the default) each side's QPN and memory
/// token (zero when remote access was not asked for) travel as the connect
/// request's and reply's private data (the CM carries the rest of the
/// endpoint itself); a peer that sends anything
/// else is refused. With `private_data::none` nothing is sent or expected,
/// which is how rcq talks to programs it did not write (rping).
///
/// Time budget: `timeout` covers every step, each under one deadline that
/// starts at the first call (resolve() from the connection): address and
/// route resolution, the connect request and its reply (or the wait for a
/// client), the accept and ESTABLISHED. Events are read from the CM's event
/// channel descriptor with poll(2), never with a blocking read. A client
/// whose request finds no listener (REJECTED, "invalid service ID") tries
/// again until the deadline, as the tcp client does.
///
/// barrier() sends nothing: the CM has no channel left once connected. rcq
/// asks for an RNR retry count of 7 (retry forever) in its request and its
/// reply, which sets the peer's QP, so a SEND from the peer that arrives
/// before our RECV is retried by the transport until the RECV is posted. Our
/// own QP's count is the one the peer asked for (7 from rcq and rping).
///
/// A disconnect from the peer (RDMA_CM_EVENT_DISCONNECTED) is kept:
/// peer_disconnected() says whether it came, wait_for_disconnect() waits for
/// it, and rcq::connection names it when a wait for a completion fails.
///
/// Move-only; not thread-safe. Host name resolution (getaddrinfo) is not
/// bounded by the deadline: give IP addresses.
class rdma_cm {
public:
    /// Marks this type as a handshake policy.
    using rcq_category = category::handshake;

    /// What the connect request and its reply carry beyond the CM's own fields.
    enum class private_data { rcq_endpoint, none };

    /// Binds to `bind_address`:`port` (0: the kernel picks; port() tells)
    /// and listens at once, so a busy port is reported here.
    static rdma_cm server(std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds{30},
                          std::string bind_address = "0.0.0.0",
                          private_data data = private_data::rcq_endpoint) {
        rdma_cm h(true, std::move(bind_address), port, timeout, data);
        h.listen();
        return h;
    }

    /// Will resolve `host` (an IP address is best: name resolution is not
    /// bounded by the deadline) and connect to its RDMA CM `port`.
    static rdma_cm client(std::string host, std::uint16_t port,
                          std::chrono::milliseconds timeout = std::chrono::seconds{30},
                          private_data data = private_data::rcq_endpoint) {
        rdma_cm h(false, std::move(host), port, timeout, data);
        h.open_channel();
        return h;
    }

    /// Takes over; `other` is left empty.
    rdma_cm(rdma_cm&&) noexcept = default;
    /// Takes over; `other` is left empty.
    rdma_cm& operator=(rdma_cm&&) noexcept = default;
    rdma_cm(const rdma_cm&) = delete;
    rdma_cm& operator=(const rdma_cm&) = delete;

    /// Disconnects (the peer gets RDMA_CM_EVENT_DISCONNECTED) and frees the
    /// CM's objects. Destroy it after the QP, as rcq::connection does.
    ~rdma_cm() {
        if (id_ && connected_ && !disconnected_ && !we_disconnected_) rdma_disconnect(id_.get());
    }

    // -- what rcq::connection calls, in this order ---------------------------

    /// Client: resolves the address and the route. Server: waits for a
    /// client's connect request. Returns the device context the CM chose;
    /// the connection runs on it. Idempotent.
    ibv_context* resolve() {
        check_usable();
        if (!id_) {
            if (server_)
                wait_for_request();
            else
                resolve_route();
        }
        return id_->verbs;
    }

    /// The port the CM chose (after resolve()).
    std::uint8_t port_num() const noexcept { return id_ ? id_->port_num : 1; }

    /// The index of the GID the CM routes from (after resolve()), when the
    /// port's GID table holds it.
    std::optional<int> gid_index() const {
        const auto& sgid = id_->route.addr.addr.ibaddr.sgid;
        for (const gid_entry& e : gid_table(id_->verbs, id_->port_num))
            if (std::memcmp(e.gid.data(), sgid.raw, 16) == 0 && e.type == gid_type::roce_v2)
                return static_cast<int>(e.index);
        return std::nullopt;
    }

    /// RESET -> INIT attributes: the CM's port and P_Key, rcq's access flags.
    init_attrs init_attributes(unsigned access) {
        ibv_qp_attr a = qp_attributes(IBV_QPS_INIT);
        return {.port_num = a.port_num, .pkey_index = a.pkey_index, .access = access};
    }

    /// Client: sends the connect request (with `local` as private data) and
    /// waits for the reply. Server: answers nothing yet (the reply goes out
    /// in established(), once the QP is in RTS). Both return the peer's
    /// endpoint: QPN, PSN and GID from the CM, the memory token from the
    /// private data.
    endpoint exchange(const endpoint& local) {
        resolve();
        local_ = local;
        if (!server_) connect();
        return peer_endpoint();
    }

    /// INIT -> RTR attributes from the CM, with the agreed READ depth.
    rtr_attrs rtr_attributes() {
        ibv_qp_attr a = qp_attributes(IBV_QPS_RTR);
        const ibv_global_route& grh = a.ah_attr.grh;
        if (a.ah_attr.static_rate != 0)
            throw_invalid(role() + ": the CM's route to " + peer_ + " asks for static rate " +
                              std::to_string(a.ah_attr.static_rate),
                          "rcq::rtr_attrs has no static rate; this device or fabric needs one", ENOTSUP);
        rtr_attrs r;
        r.dest_qpn = a.dest_qp_num;
        r.rq_psn = a.rq_psn;
        r.dlid = a.ah_attr.dlid;
        std::memcpy(r.dgid.data(), grh.dgid.raw, 16);
        r.sgid_index = grh.sgid_index;
        r.port_num = a.ah_attr.port_num;
        r.path_mtu = a.path_mtu;
        r.hop_limit = grh.hop_limit;
        r.flow_label = grh.flow_label;
        r.traffic_class = grh.traffic_class;
        r.sl = a.ah_attr.sl;
        r.max_dest_rd_atomic = responder_resources_;
        r.min_rnr_timer = a.min_rnr_timer;
        return r;
    }

    /// RTR -> RTS attributes from the CM, with the agreed READ depth.
    rts_attrs rts_attributes() {
        ibv_qp_attr a = qp_attributes(IBV_QPS_RTS);
        return {.sq_psn = a.sq_psn,
                .timeout = a.timeout,
                .retry_cnt = a.retry_cnt,
                .rnr_retry = a.rnr_retry,
                .max_rd_atomic = initiator_depth_};
    }

    /// Called once the QP is in RTS. Client: tells the server (RTU). Server:
    /// accepts, with `local` as private data, and waits for ESTABLISHED.
    void established() {
        check_usable();
        if (!server_) {
            if (rdma_establish(id_.get()) != 0)
                throw_error(role() + ": rdma_establish with " + peer_,
                            "the server may have given up waiting: give it a longer timeout");
            connected_ = true;
            return;
        }
        rdma_conn_param param = conn_param();
        auto wire = detail::encode_cm_token(local_);
        if (data_ == private_data::rcq_endpoint) {
            param.private_data = wire.data();
            param.private_data_len = static_cast<std::uint8_t>(wire.size());
        }
        if (rdma_accept(id_.get(), &param) != 0)
            throw_error(role() + ": rdma_accept from " + peer_, "");
        connected_ = true;
        auto ev = next_event("waiting for RDMA_CM_EVENT_ESTABLISHED from " + peer_);
        if (ev->event != RDMA_CM_EVENT_ESTABLISHED)
            fail_on(*ev, "waiting for RDMA_CM_EVENT_ESTABLISHED from " + peer_,
                    "the client went away during the connection");
    }

    /// Nothing to exchange: see the class comment (rnr_retry 7).
    void barrier() { check_usable(); }

    // -- after the connection --------------------------------------------------

    /// Whether the connection is down: RDMA_CM_EVENT_DISCONNECTED came, because
    /// the peer disconnected or answered our disconnect(). Reads pending CM
    /// events; never blocks.
    bool peer_disconnected() {
        if (!disconnected_ && channel_) drain(deadline(deadline::clock::now()));
        return disconnected_;
    }

    /// Waits at most `timeout` for the peer to disconnect; throws rcq::error
    /// if it does not.
    void wait_for_disconnect(std::chrono::milliseconds timeout) {
        if (peer_disconnected()) return;
        drain(deadline::after(timeout));
        if (!disconnected_)
            throw_error(role() + ": " + peer_ + " did not disconnect within " +
                            rcq::detail::budget_text(timeout),
                        "is the peer still running?", ETIMEDOUT);
    }

    /// Disconnects from the peer now (also done on destruction). The peer
    /// gets RDMA_CM_EVENT_DISCONNECTED; so do we, once it answers, after
    /// which peer_disconnected() is true as well.
    void disconnect() noexcept {
        if (id_ && connected_ && !disconnected_ && !we_disconnected_) rdma_disconnect(id_.get());
        we_disconnected_ = true;
    }

    /// READs the peer may have outstanding on us, and we on the peer, as agreed.
    std::uint8_t responder_resources() const noexcept { return responder_resources_; }
    /// READs we may have outstanding on the peer, as agreed.
    std::uint8_t initiator_depth() const noexcept { return initiator_depth_; }

    /// Server: the port it listens on (the kernel's choice when 0 was asked).
    std::uint16_t port() const noexcept { return port_; }
    /// Whether this is the passive (listening) side.
    bool is_server() const noexcept { return server_; }

    /// One line for the connection's narration.
    std::string describe() const {
        return server_ ? "rdma_cm server on " + host_ + " port " + std::to_string(port_)
                       : "rdma_cm client to " + host_port() ;
    }

private:
    rdma_cm(bool server, std::string host, std::uint16_t port, std::chrono::milliseconds timeout,
            private_data data)
        : server_(server), host_(std::move(host)), port_(port), timeout_(timeout), data_(data) {
        // Before anything is opened, like the other handshakes.
        if (timeout_ <= std::chrono::milliseconds::zero())
            throw_invalid(role() + ": the timeout must be positive (got " +
                              std::to_string(timeout_.count()) + " ms)",
                          "for no time limit, give std::chrono::milliseconds::max()");
        if (!server_ && port_ == 0)
            throw_invalid(role() + ": port 0 is not a port a server can listen on",
                          "give the port the server listens on (rping's default is 7174)");
    }

    std::string role() const { return server_ ? "rdma_cm server" : "rdma_cm client"; }
    std::string host_port() const {
        return (host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_) + ":" +
               std::to_string(port_);
    }
    std::string budget_text() const { return rcq::detail::budget_text(timeout_); }

    void check_usable() const {
        if (!channel_) throw_invalid(role() + ": used after being moved from");
    }

    const deadline& budget() {
        if (!deadline_) deadline_ = deadline::after(timeout_);
        return *deadline_;
    }

    void open_channel() {
        channel_.reset(rdma_create_event_channel());
        if (!channel_)
            throw_error(role() + ": rdma_create_event_channel",
                        "is the rdma_ucm kernel module loaded (/dev/infiniband/rdma_cm)?");
        const int fd = channel_->fd;
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
            throw_error(role() + ": making the CM event channel non-blocking");
    }

    detail::cm_id_ptr create_id() {
        rdma_cm_id* id = nullptr;
        if (rdma_create_id(channel_.get(), &id, nullptr, RDMA_PS_TCP) != 0)
            throw_error(role() + ": rdma_create_id");
        return detail::cm_id_ptr(id);
    }

    sockaddr_storage address(int flags) const {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_flags = flags | AI_NUMERICSERV;
        addrinfo* list = nullptr;
        const std::string service = std::to_string(port_);
        if (int rc = getaddrinfo(host_.c_str(), service.c_str(), &hints, &list); rc != 0)
            throw_invalid(role() + ": cannot resolve \"" + host_ + "\" (" + gai_strerror(rc) + ")",
                          "give the IP address of the peer's RoCE interface");
        sockaddr_storage out{};
        std::memcpy(&out, list->ai_addr, std::min<std::size_t>(list->ai_addrlen, sizeof out));
        freeaddrinfo(list);
        return out;
    }

    void listen() {
        open_channel();
        listener_ = create_id();
        sockaddr_storage addr = address(AI_PASSIVE);
        if (rdma_bind_addr(listener_.get(), reinterpret_cast<sockaddr*>(&addr)) != 0) {
            const int err = errno;
            throw_error(role() + ": rdma_bind_addr(" + host_port() + ")",
                        err == EADDRINUSE ? "the RDMA CM port is in use (an earlier run?); pick another"
                        : err == ENODEV || err == EADDRNOTAVAIL
                            ? "no RDMA device has the address " + host_ +
                                  ": bind to the IP address of a RoCE interface (`rdma link` lists "
                                  "them), or to 0.0.0.0"
                            : "",
                        err);
        }
        if (rdma_listen(listener_.get(), 4) != 0) throw_error(role() + ": rdma_listen on " + host_port());
        port_ = ntohs(rdma_get_src_port(listener_.get()));
        peer_ = "a client";
    }

    // Reads one CM event, waiting with poll(2) until the deadline.
    detail::cm_event_ptr next_event(const std::string& what) {
        rdma_cm_event* ev = nullptr;
        for (;;) {
            if (rdma_get_cm_event(channel_.get(), &ev) == 0) {
                detail::cm_event_ptr owned(ev);
                if (ev->event == RDMA_CM_EVENT_DISCONNECTED && ev->id == id_.get())
                    disconnected_ = true;
                return owned;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                throw_error(role() + ": rdma_get_cm_event while " + what);
            pollfd pfd{channel_->fd, POLLIN, 0};
            const int n = ::poll(&pfd, 1, budget().remaining_ms());
            if (n < 0 && errno != EINTR) throw_error(role() + ": poll on the CM event channel");
            if (n == 0)
                throw_error(role() + ": " + what + ": nothing within the budget of " + budget_text(),
                            server_ ? "start the client with this host's RoCE address and port " +
                                          std::to_string(port_) + ", or give a longer timeout"
                                    : "is the server running, and is " + host_ +
                                          " the address of its RoCE interface? Or give a longer timeout",
                            ETIMEDOUT);
        }
    }

    // Reads events until the deadline or a DISCONNECTED.
    void drain(const deadline& until) {
        while (!disconnected_) {
            rdma_cm_event* ev = nullptr;
            if (rdma_get_cm_event(channel_.get(), &ev) == 0) {
                detail::cm_event_ptr owned(ev);
                if (ev->id == id_.get() && ev->event == RDMA_CM_EVENT_DISCONNECTED) disconnected_ = true;
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return;
            pollfd pfd{channel_->fd, POLLIN, 0};
            if (::poll(&pfd, 1, until.remaining_ms()) == 0) return;
        }
    }

    // The error for an event that is not the one awaited: names the event,
    // its status (the reject reason for REJECTED) and a hint.
    [[noreturn]] void fail_on(const rdma_cm_event& ev, const std::string& what, std::string hint) {
        std::string step = role() + ": " + what + ": got " + rdma_event_str(ev.event);
        int err = EPROTO;
        switch (ev.event) {
        case RDMA_CM_EVENT_REJECTED:
            step += " (reason " + std::to_string(ev.status) + ", " + detail::cm_reject_reason(ev.status) + ")";
            err = ECONNREFUSED;
            if (ev.status == detail::cm_reject_consumer)
                hint = "the peer's program refused the connection: it may not speak rcq's private data "
                       "(use private_data::none towards programs rcq did not write), or it already "
                       "has its one client";
            else if (ev.status == detail::cm_reject_invalid_service_id)
                hint = "nothing listens on " + host_port() + " (start the server first, on that "
                       "address and port)";
            break;
        case RDMA_CM_EVENT_UNREACHABLE:
            step += " (status " + std::to_string(ev.status) + ")";
            err = EHOSTUNREACH;
            hint = "the peer's host did not answer the CM: does it have an RDMA device (rxe or "
                   "hardware) on that address, and does a firewall let RoCE (UDP 4791) through?";
            break;
        case RDMA_CM_EVENT_ADDR_ERROR:
            step += " (status " + std::to_string(ev.status) + ")";
            err = ev.status < 0 ? -ev.status : EADDRNOTAVAIL;
            hint = "no RDMA device can reach " + host_ + ": give the IP address of a RoCE interface "
                   "(`rdma link` shows which network devices have one)";
            break;
        case RDMA_CM_EVENT_ROUTE_ERROR:
            step += " (status " + std::to_string(ev.status) + ")";
            err = ev.status < 0 ? -ev.status : ENETUNREACH;
            hint = "no route to " + host_ + " through an RDMA device";
            break;
        case RDMA_CM_EVENT_CONNECT_ERROR:
            step += " (status " + std::to_string(ev.status) + ")";
            err = ev.status < 0 ? -ev.status : ECONNABORTED;
            break;
        case RDMA_CM_EVENT_DISCONNECTED:
            err = ECONNRESET;
            hint = "the peer closed the connection";
            break;
        case RDMA_CM_EVENT_DEVICE_REMOVAL:
            err = ENODEV;
            hint = "the RDMA device went away";
            break;
        default:
            break;
        }
        throw_error(step, hint, err);
    }

    ibv_qp_attr qp_attributes(ibv_qp_state state) {
        ibv_qp_attr a{};
        a.qp_state = state;
        int mask = 0;
        if (rdma_init_qp_attr(id_.get(), &a, &mask) != 0)
            throw_error(role() + ": rdma_init_qp_attr(" +
                        (state == IBV_QPS_INIT ? "INIT" : state == IBV_QPS_RTR ? "RTR" : "RTS") + ")");
        return a;
    }

    // This device's READ limits, as an RDMA CM parameter (8 bits).
    void device_limits(std::uint8_t& responder, std::uint8_t& initiator) const {
        ibv_device_attr attr{};
        if (int rc = ibv_query_device(id_->verbs, &attr); rc != 0)
            throw_error(role() + ": ibv_query_device", "", rc);
        responder = static_cast<std::uint8_t>(std::clamp(attr.max_qp_rd_atom, 0, 255));
        initiator = static_cast<std::uint8_t>(std::clamp(attr.max_qp_init_rd_atom, 0, 255));
    }

    rdma_conn_param conn_param() const {
        rdma_conn_param p{};
        p.responder_resources = responder_resources_;
        p.initiator_depth = initiator_depth_;
        p.retry_count = rts_attrs{}.retry_cnt;
        p.rnr_retry_count = 7;
        p.qp_num = local_.qpn;
        return p;
    }

    void resolve_route() {
        id_ = create_id();
        sockaddr_storage addr = address(0);
        char text[INET6_ADDRSTRLEN] = "?";
        if (addr.ss_family == AF_INET)
            inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in&>(addr).sin_addr, text, sizeof text);
        else
            inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6&>(addr).sin6_addr, text, sizeof text);
        peer_ = std::string(text) + ":" + std::to_string(port_);
        const int ms = std::max(1, budget().remaining_ms());
        if (rdma_resolve_addr(id_.get(), nullptr, reinterpret_cast<sockaddr*>(&addr), ms) != 0)
            throw_error(role() + ": resolving the address " + peer_ + ": rdma_resolve_addr",
                        "no RDMA device can reach it: give the IP address of the server's RoCE interface");
        auto ev = next_event("resolving the address " + peer_);
        if (ev->event != RDMA_CM_EVENT_ADDR_RESOLVED) fail_on(*ev, "resolving the address " + peer_, "");
        ev.reset();
        if (rdma_resolve_route(id_.get(), std::max(1, budget().remaining_ms())) != 0)
            throw_error(role() + ": rdma_resolve_route(" + peer_ + ")");
        ev = next_event("resolving the route to " + peer_);
        if (ev->event != RDMA_CM_EVENT_ROUTE_RESOLVED) fail_on(*ev, "resolving the route to " + peer_, "");
        device_limits(responder_resources_, initiator_depth_);
    }

    // Client: connect, and again while nobody listens yet, until the deadline.
    void connect() {
        std::chrono::milliseconds backoff{50};
        for (;;) {
            rdma_conn_param param = conn_param();
            auto wire = detail::encode_cm_token(local_);
            if (data_ == private_data::rcq_endpoint) {
                param.private_data = wire.data();
                param.private_data_len = static_cast<std::uint8_t>(wire.size());
            }
            if (rdma_connect(id_.get(), &param) != 0)
                throw_error(role() + ": rdma_connect to " + peer_);
            const std::string what = "waiting for the server's reply (RDMA_CM_EVENT_CONNECT_RESPONSE) from " + peer_;
            auto ev = next_event(what);
            if (ev->event == RDMA_CM_EVENT_CONNECT_RESPONSE) {
                take_peer(ev->param.conn);
                // The peer's READ limits cap ours: we may have as many READs
                // outstanding as it has responder resources, and the reverse.
                initiator_depth_ = std::min(initiator_depth_, ev->param.conn.responder_resources);
                responder_resources_ = std::min(responder_resources_, ev->param.conn.initiator_depth);
                return;
            }
            const bool nobody_listens = ev->event == RDMA_CM_EVENT_REJECTED &&
                                        ev->status == detail::cm_reject_invalid_service_id;
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(budget().at() -
                                                                              deadline::clock::now());
            if (!nobody_listens || left <= backoff) fail_on(*ev, what, "");
            ev.reset();
            // A rejected id cannot connect again: start over with a new one,
            // which resolves to the same device (the QP's).
            ibv_context* device = id_->verbs;
            id_.reset();
            rcq::detail::sleep_for(backoff);
            backoff = std::min(backoff * 2, std::chrono::milliseconds{1000});
            resolve_route();
            if (id_->verbs != device)
                throw_invalid(role() + ": " + peer_ + " now resolves to another RDMA device",
                              "the routing changed during the connection; try again");
        }
    }

    // Server: the first connect request on the listener.
    void wait_for_request() {
        const std::string what = "waiting for a client on port " + std::to_string(port_);
        auto ev = next_event(what);
        while (ev->event != RDMA_CM_EVENT_CONNECT_REQUEST) ev = next_event(what); // nothing else concerns us yet
        id_.reset(ev->id);
        const sockaddr* peer = rdma_get_peer_addr(id_.get());
        char text[INET6_ADDRSTRLEN] = "?";
        if (peer->sa_family == AF_INET)
            inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(peer)->sin_addr, text, sizeof text);
        else
            inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(peer)->sin6_addr, text, sizeof text);
        peer_ = "client " + std::string(text) + ":" + std::to_string(ntohs(rdma_get_dst_port(id_.get())));
        device_limits(responder_resources_, initiator_depth_);
        responder_resources_ = std::min(responder_resources_, ev->param.conn.initiator_depth);
        initiator_depth_ = std::min(initiator_depth_, ev->param.conn.responder_resources);
        try {
            take_peer(ev->param.conn);
        } catch (const error&) {
            rdma_reject(id_.get(), nullptr, 0);
            throw;
        }
        // The event must be acknowledged before its listener can be destroyed
        // (rdma_destroy_id waits for that). One client only: later requests
        // find no listener.
        ev.reset();
        listener_.reset();
    }

    void take_peer(const rdma_conn_param& p) {
        peer_qpn_ = p.qp_num;
        const auto* bytes = static_cast<const std::byte*>(p.private_data);
        peer_data_.assign(bytes, bytes + (bytes != nullptr ? p.private_data_len : 0));
        if (data_ == private_data::none) return;
        // The private data is padded with zeros to the CM's fixed size.
        try {
            peer_memory_ = detail::decode_cm_token(peer_data_);
        } catch (const error& e) {
            throw error(e.code(), role() + ": the private data of " + peer_ + ": " + e.step(),
                        "the peer does not speak rcq: use private_data::none");
        }
        if ((peer_memory_->qpn & 0xffffff) != (peer_qpn_ & 0xffffff))
            throw_invalid(role() + ": " + peer_ + " names QPN 0x" + rcq::detail::hex(peer_memory_->qpn) +
                              " in its private data but 0x" + rcq::detail::hex(peer_qpn_) + " to the CM",
                          "", EPROTO);
    }

    endpoint peer_endpoint() {
        endpoint e{};
        if (peer_memory_) {
            e.remote_addr = peer_memory_->remote_addr;
            e.rkey = peer_memory_->rkey;
            e.remote_len = peer_memory_->remote_len;
        }
        e.qpn = peer_qpn_;
        e.psn = qp_attributes(IBV_QPS_RTR).rq_psn;
        std::memcpy(e.gid.data(), id_->route.addr.addr.ibaddr.dgid.raw, 16);
        return e;
    }

    bool server_;
    std::string host_;
    std::uint16_t port_;
    std::chrono::milliseconds timeout_;
    private_data data_;
    std::optional<deadline> deadline_;
    // Declared before the ids, so destroyed after them.
    detail::cm_channel_ptr channel_;
    detail::cm_id_ptr listener_;
    detail::cm_id_ptr id_;
    std::string peer_;
    endpoint local_{};
    std::uint32_t peer_qpn_ = 0;
    std::vector<std::byte> peer_data_;
    std::optional<endpoint> peer_memory_;
    std::uint8_t responder_resources_ = 0;
    std::uint8_t initiator_depth_ = 0;
    bool connected_ = false;
    bool disconnected_ = false;    // RDMA_CM_EVENT_DISCONNECTED came
    bool we_disconnected_ = false; // disconnect() was called
};

} // namespace rcq::handshake
