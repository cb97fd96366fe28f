// rcq/impl/detail/qp_setup.ipp - the connection set-up steps that are not templates.
// Included by <rcq/detail/qp_setup.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/detail/qp_setup.hpp>
#include <rcq/deadline.hpp>
#include <rcq/work_completion.hpp>

#include <algorithm>
#include <ostream>
#include <random>
#include <string_view>
#include <utility>

namespace rcq::detail {

void narrator::operator()(std::string_view line) const {
    if (out != nullptr) *out << "[rcq] " << line << '\n' << std::flush;
}

std::uint32_t random_psn() {
    return std::random_device{}() & 0xffffff;
}

context open_device(const std::string& device, const narrator& say) {
    context ctx = context::open(device);
    say("opened device " + ctx.name());
    return ctx;
}

gid_entry pick_gid(ibv_context* ctx, std::uint8_t port_num, const ibv_port_attr& port,
                   std::optional<int> index, address_family peer, const narrator& say) {
    const std::string name = device_name(ctx);
    if (port.state != IBV_PORT_ACTIVE)
        throw_error(name + " port " + std::to_string(port_num) + " is " +
                        std::string(port_state_name(port.state)) + ", not ACTIVE",
                    "check the link: `ibv_devinfo -d " + name + "`", ENETDOWN);
    say("port " + std::to_string(port_num) + ": ACTIVE, active MTU " +
        std::to_string(mtu_bytes(port.active_mtu)) + ", LID " + std::to_string(port.lid));
    gid_entry g = choose_gid(ctx, port_num, index, peer);
    const char* family = peer == address_family::ipv4   ? " for an IPv4 peer"
                         : peer == address_family::ipv6 ? " for an IPv6 peer"
                                                        : "";
    say("GID index " + std::to_string(g.index) + " (" + g.kind() + "): " + g.address() +
        (g.netdev().empty() ? "" : " on " + g.netdev()) +
        (index ? "" : ", chosen automatically" + std::string(family)));
    if (g.is_link_local())
        say("note: GID " + g.address() +
            " is link-local: it reaches only peers on the same "
            "Ethernet segment" +
            (index ? std::string()
                   : "; the port has no routable RoCE v2 GID of that family (give its "
                     "network device an address)"));
    return g;
}

pd make_pd(ibv_context* ctx, const narrator& say) {
    pd domain(ctx);
    say("allocated a protection domain");
    return domain;
}

qp<state::init> create_in_init(ibv_pd* domain, const cq& shared, const qp_caps& caps,
                               const init_attrs& init, const narrator& say) {
    qp<state::reset> fresh(domain, shared, caps);
    say("created RC queue pair: QPN 0x" + hex(fresh.qp_num()) + ", state RESET");
    auto initialized = std::move(fresh).to_init(init);
    say("QP RESET -> INIT");
    return initialized;
}

std::uint8_t rd_atomic_depth(ibv_context* ctx, std::optional<int> asked, int limit,
                             const char* what, const char* limit_name) {
    if (!asked) return static_cast<std::uint8_t>(std::clamp(limit, 0, 16));
    if (*asked < 0)
        throw_invalid(std::string(what) + " " + std::to_string(*asked) + " is negative",
                      "ask for 0 or more");
    if (*asked > 255 || *asked > limit)
        throw_invalid(std::string(what) + " " + std::to_string(*asked) + " is more than " +
                          device_name(ctx) + " allows (" + limit_name + " " +
                          std::to_string(limit) + ")",
                      "ask for at most " + std::to_string(std::min(limit, 255)) +
                          ", or leave it unset for the largest the device offers up to 16");
    return static_cast<std::uint8_t>(*asked);
}

qp<state::rts> walk_to_rts(qp<state::init>&& initialized, const transition_attrs& t,
                           const std::string& mtu_source, const narrator& say) {
    const rtr_attrs& rtr = t.rtr;
    const rts_attrs& rts = t.rts;
    // On RoCE the kernel turns the peer's GID into a next-hop MAC address
    // here (a route, then ARP or neighbour discovery, within 1 s): a GID this
    // host cannot reach fails now, not at the first message.
    auto ready_to_receive = [&] {
        try {
            return std::move(initialized).to_rtr(rtr);
        } catch (const error& e) {
            const int err = e.code().value();
            if (err != ETIMEDOUT && err != ENETUNREACH && err != EHOSTUNREACH && err != ENODATA)
                throw;
            throw error(
                e.code(), e.step(),
                "the kernel found no route or no neighbour (ARP) answer for the peer's GID " +
                    gid_entry{.gid = rtr.dgid}.address() +
                    ": check that this host reaches that address (ping it) and that it is "
                    "the peer's RoCE address; " +
                    e.hint());
        }
    }();
    say("QP INIT -> RTR (path MTU " + std::to_string(mtu_bytes(rtr.path_mtu)) + mtu_source +
        "; remote QPN 0x" + hex(rtr.dest_qpn & 0xffffff) + "; accepting " +
        std::to_string(rtr.max_dest_rd_atomic) + " READs/atomics outstanding" +
        (rtr.traffic_class || rtr.sl ? "; traffic class " + std::to_string(rtr.traffic_class) +
                                           ", SL " + std::to_string(rtr.sl)
                                     : std::string()) +
        ")");
    auto ready_to_send = std::move(ready_to_receive).to_rts(rts);
    say("QP RTR -> RTS (ACK timeout " + std::to_string(rts.timeout) + ", retry_cnt " +
        std::to_string(rts.retry_cnt) + ", rnr_retry " + std::to_string(rts.rnr_retry) +
        ", up to " + std::to_string(rts.max_rd_atomic) + " READs/atomics outstanding)");
    return ready_to_send;
}

endpoint local_endpoint(const qp_settings& opts, ibv_context* ctx, const ibv_port_attr& port,
                        const gid_entry& gid, std::uint32_t qpn, std::span<std::byte> memory,
                        std::uint32_t rkey) {
    endpoint local{};
    local.qpn = qpn;
    local.psn = random_psn();
    local.lid = port.lid;
    local.gid = gid.gid;
    local.mtu = static_cast<std::uint16_t>(mtu_bytes(port.active_mtu));
    // opts passed check_qp_settings when the connection or resources were made.
    if (opts.max_mtu) local.mtu = std::min(local.mtu, static_cast<std::uint16_t>(*opts.max_mtu));
    const ibv_device_attr caps = query_device(ctx);
    local.initiator_depth = rd_atomic_depth(ctx, opts.initiator_depth, caps.max_qp_init_rd_atom,
                                            "initiator_depth", "max_qp_init_rd_atom");
    local.responder_resources = rd_atomic_depth(ctx, opts.responder_resources,
                                                caps.max_qp_rd_atom, "responder_resources",
                                                "max_qp_rd_atom");
    if (opts.remote_access != 0) {
        local.remote_addr = reinterpret_cast<std::uintptr_t>(memory.data());
        local.rkey = rkey;
        local.remote_len = memory.size();
    }
    return local;
}

transition_attrs agreed_transitions(const qp_settings& opts, const gid_entry& gid,
                                    const endpoint& local, const endpoint& remote) {
    const agreed_settings agreed = agree(local, remote);
    transition_attrs t;
    t.rtr = {
        .dest_qpn = remote.qpn,
        .rq_psn = remote.psn,
        .dlid = remote.lid,
        .dgid = remote.gid,
        .sgid_index = static_cast<std::uint8_t>(gid.index),
        .port_num = opts.port,
        .path_mtu = agreed.path_mtu,
        .traffic_class = opts.traffic_class,
        .sl = opts.service_level,
        .max_dest_rd_atomic = agreed.max_dest_rd_atomic,
    };
    t.rts = {.sq_psn = local.psn,
             .timeout = opts.ack_timeout,
             .retry_cnt = opts.retry_cnt,
             .rnr_retry = opts.rnr_retry,
             .max_rd_atomic = agreed.max_rd_atomic};
    return t;
}

void check_qp_settings(const qp_settings& opts, const char* type) {
    auto refuse = [type](const std::string& what, const std::string& hint) {
        throw_invalid(std::string(type) + "::" + what, hint);
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
        refuse("remote_access 0x" + hex(opts.remote_access) + " has bits other than "
                   "IBV_ACCESS_REMOTE_WRITE, _READ and _ATOMIC",
               "give only the remote access the peer gets; local write is always on");
    if (opts.completion_timeout && *opts.completion_timeout <= std::chrono::milliseconds::zero())
        refuse("completion_timeout " + std::to_string(opts.completion_timeout->count()) +
                   " ms: it must be positive",
               "for no time limit, give std::chrono::milliseconds::max()");
}

std::string mtu_source(const endpoint& local, const endpoint& remote) {
    return ": ours " + std::to_string(local.mtu) + ", the peer's " + std::to_string(remote.mtu);
}

std::string describe(const endpoint& e) {
    return "QPN 0x" + hex(e.qpn) + ", PSN 0x" + hex(e.psn) + ", LID " + std::to_string(e.lid) +
           ", GID " + gid_entry{.gid = e.gid}.address();
}

void rethrow_go_ahead_failure(const error& e) {
    const std::string peer_hint = "the peer may never have called ready() (it must, "
                                  "once its receives are posted), or it stopped";
    throw error(e.code(), e.step(), e.hint().empty() ? peer_hint : e.hint() + "; or " + peer_hint);
}

std::string buffer_line(const std::string& how, std::size_t bytes, std::uint32_t lkey,
                        std::uint32_t rkey) {
    return (how.empty() ? "buffer ready" : how) + ": " + std::to_string(bytes) + " bytes, lkey 0x" +
           hex(lkey) + ", rkey 0x" + hex(rkey);
}

std::string cq_line(int depth, const std::string& how) {
    return "created a completion queue of " + std::to_string(depth) + " entries" +
           (how.empty() ? "" : " (" + how + ")");
}

std::string sending_line(const std::string& how, const endpoint& local) {
    return "handshake" + (how.empty() ? "" : " (" + how + ")") + ": sending local endpoint  " +
           describe(local);
}

std::string completion_line(const ibv_wc& wc) {
    std::string line =
        std::string("completion: ") + to_string(wc.opcode) + ", wr_id " + std::to_string(wc.wr_id);
    if ((wc.opcode & IBV_WC_RECV) != 0) line += ", " + std::to_string(wc.byte_len) + " bytes";
    return line;
}

void throw_peer_gone(std::string_view what, const char* hint) {
    throw_error("no completion for " + std::string(what) + ": the peer has gone", hint, ECONNRESET);
}

void throw_poll_failed(std::string_view what, int n) {
    throw_error("polling the CQ while waiting for " + std::string(what) + " failed (result " +
                    std::to_string(n) + ")",
                "ibv_poll_cq returns a negative value when the provider fails (a CQ that "
                "overran, i.e. cq_depth too small, is one cause), a poll policy -errno "
                "for its own failures",
                EIO);
}

void throw_nothing_outstanding(std::string_view what, std::chrono::milliseconds timeout) {
    throw_error("no completion for " + std::string(what) + " within " + budget_text(timeout) +
                    ": nothing was outstanding",
                "every post_send/post_recv of this connection has completed already "
                "(requests posted on queue_pair() directly are not counted): post "
                "before waiting",
                ETIMEDOUT);
}

void throw_no_completion(std::string_view what, std::chrono::milliseconds timeout,
                         const char* hint) {
    throw_error("no completion for " + std::string(what) + " within " + budget_text(timeout), hint,
                ETIMEDOUT);
}

void check_completion_of_gone_peer(const ibv_wc& wc, std::string_view what, const char* gone_hint) {
    try {
        check_completion(wc, what);
    } catch (const error& e) {
        throw error(e.code(), e.step(), std::string(gone_hint) + "; " + e.hint());
    }
}

void check_completion_without_ack(const ibv_wc& wc, std::string_view what, const endpoint& remote) {
    try {
        check_completion(wc, what);
    } catch (const error& e) {
        throw error(e.code(), e.step(),
                    "no ACK came from the peer's GID " + gid_entry{.gid = remote.gid}.address() +
                        " (QPN 0x" + hex(remote.qpn) +
                        "): check that this host reaches that address (ping it) and that it "
                        "is the peer's RoCE address, not one behind NAT or on another "
                        "network; " +
                        e.hint());
    }
}

} // namespace rcq::detail
