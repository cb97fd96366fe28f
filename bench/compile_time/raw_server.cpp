// The RC server of the teaching program, written with raw verbs and sockets:
// the same steps as rcq_server.cpp (first device, RoCE v2 IPv4 GID, a 4 KiB
// buffer, one CQ, an RC QP, endpoints swapped over TCP, RESET -> INIT -> RTR
// -> RTS, one RECV answered with a SEND, every wait bounded), for
// bench/compile_time.sh to compare compile times.
#include <infiniband/verbs.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

namespace {

constexpr std::size_t buffer_size = 4096;
constexpr int timeout_ms = 30000;

struct endpoint {
    std::uint32_t qpn;
    std::uint32_t psn;
    std::uint8_t gid[16];
};

int fail(const char* step, int err = errno) {
    std::fprintf(stderr, "raw_server: %s: %s\n", step, std::strerror(err));
    return 1;
}

// Reads or writes exactly `n` bytes, giving up after the timeout.
bool transfer(int fd, void* data, std::size_t n, bool out) {
    auto* p = static_cast<char*>(data);
    while (n > 0) {
        pollfd pfd{fd, static_cast<short>(out ? POLLOUT : POLLIN), 0};
        if (::poll(&pfd, 1, timeout_ms) != 1) return false;
        const ssize_t k = out ? ::send(fd, p, n, MSG_NOSIGNAL) : ::recv(fd, p, n, 0);
        if (k <= 0) return false;
        p += k;
        n -= static_cast<std::size_t>(k);
    }
    return true;
}

// Waits for one completion, at most 5 s.
bool wait_completion(ibv_cq* cq, ibv_wc& wc) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (unsigned spins = 0;; ++spins) {
        const int n = ibv_poll_cq(cq, 1, &wc);
        if (n < 0) return false;
        if (n == 1) {
            if (wc.status == IBV_WC_SUCCESS) return true;
            std::fprintf(stderr, "raw_server: completion %s (wr_id %llu)\n",
                         ibv_wc_status_str(wc.status), static_cast<unsigned long long>(wc.wr_id));
            return false;
        }
        if (spins % 1024 == 1023 && std::chrono::steady_clock::now() >= until) return false;
    }
}

} // namespace

int main(int argc, char** argv) {
    const int tcp_port = argc > 1 ? std::atoi(argv[1]) : 18515;

    int num = 0;
    ibv_device** list = ibv_get_device_list(&num);
    if (list == nullptr || num == 0) return fail("ibv_get_device_list", ENODEV);
    ibv_context* ctx = ibv_open_device(list[0]);
    ibv_free_device_list(list);
    if (ctx == nullptr) return fail("ibv_open_device");

    ibv_port_attr port{};
    if (ibv_query_port(ctx, 1, &port) != 0) return fail("ibv_query_port");
    if (port.state != IBV_PORT_ACTIVE) return fail("port 1 is not ACTIVE", ENETDOWN);
    int gid_index = -1;
    ibv_gid_entry gid{};
    for (int i = 0; i < port.gid_tbl_len && gid_index < 0; ++i) {
        ibv_gid_entry e{};
        if (ibv_query_gid_ex(ctx, 1, static_cast<std::uint32_t>(i), &e, 0) != 0) continue;
        static constexpr std::uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (e.gid_type == IBV_GID_TYPE_ROCE_V2 && std::memcmp(e.gid.raw, v4_prefix, 12) == 0) {
            gid_index = i;
            gid = e;
        }
    }
    if (gid_index < 0) return fail("no RoCE v2 IPv4 GID on port 1", ENODEV);

    ibv_pd* pd = ibv_alloc_pd(ctx);
    if (pd == nullptr) return fail("ibv_alloc_pd");
    void* memory = mmap(nullptr, buffer_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) return fail("mmap");
    ibv_mr* mr = ibv_reg_mr(pd, memory, buffer_size, IBV_ACCESS_LOCAL_WRITE);
    if (mr == nullptr) return fail("ibv_reg_mr");
    ibv_cq* cq = ibv_create_cq(ctx, 128, nullptr, nullptr, 0);
    if (cq == nullptr) return fail("ibv_create_cq");

    ibv_qp_init_attr init{};
    init.send_cq = cq;
    init.recv_cq = cq;
    init.qp_type = IBV_QPT_RC;
    init.cap.max_send_wr = 64;
    init.cap.max_recv_wr = 64;
    init.cap.max_send_sge = 1;
    init.cap.max_recv_sge = 1;
    ibv_qp* qp = ibv_create_qp(pd, &init);
    if (qp == nullptr) return fail("ibv_create_qp");

    ibv_qp_attr attr{};
    attr.qp_state = IBV_QPS_INIT;
    attr.port_num = 1;
    if (int rc = ibv_modify_qp(qp, &attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
        return fail("RESET->INIT", rc);

    // One client, over TCP, within the timeout.
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    const int yes = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(tcp_port));
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, 1) != 0)
        return fail("bind/listen");
    pollfd pfd{listener, POLLIN, 0};
    if (::poll(&pfd, 1, timeout_ms) != 1) return fail("waiting for the client", ETIMEDOUT);
    const int conn = ::accept(listener, nullptr, nullptr);
    ::close(listener);
    if (conn < 0) return fail("accept");

    endpoint local{qp->qp_num, std::random_device{}() & 0xffffff, {}};
    std::memcpy(local.gid, gid.gid.raw, 16);
    endpoint remote{};
    endpoint wire = local;
    wire.qpn = htonl(wire.qpn);
    wire.psn = htonl(wire.psn);
    if (!transfer(conn, &wire, sizeof wire, true) || !transfer(conn, &remote, sizeof remote, false))
        return fail("swapping endpoints", EPROTO);
    remote.qpn = ntohl(remote.qpn);
    remote.psn = ntohl(remote.psn);

    attr = {};
    attr.qp_state = IBV_QPS_RTR;
    attr.path_mtu = port.active_mtu;
    attr.dest_qp_num = remote.qpn;
    attr.rq_psn = remote.psn;
    attr.max_dest_rd_atomic = 1;
    attr.min_rnr_timer = 12;
    attr.ah_attr.is_global = 1;
    attr.ah_attr.port_num = 1;
    attr.ah_attr.grh.hop_limit = 64;
    attr.ah_attr.grh.sgid_index = static_cast<std::uint8_t>(gid_index);
    std::memcpy(attr.ah_attr.grh.dgid.raw, remote.gid, 16);
    if (int rc = ibv_modify_qp(qp, &attr,
                               IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                                   IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
        return fail("INIT->RTR", rc);
    attr = {};
    attr.qp_state = IBV_QPS_RTS;
    attr.sq_psn = local.psn;
    attr.timeout = 14;
    attr.retry_cnt = 7;
    attr.rnr_retry = 7;
    attr.max_rd_atomic = 1;
    if (int rc = ibv_modify_qp(qp, &attr,
                               IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                                   IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC))
        return fail("RTR->RTS", rc);

    ibv_sge sge{reinterpret_cast<std::uintptr_t>(memory), 64, mr->lkey};
    ibv_recv_wr rwr{};
    rwr.wr_id = 1;
    rwr.sg_list = &sge;
    rwr.num_sge = 1;
    ibv_recv_wr* bad_recv;
    if (int rc = ibv_post_recv(qp, &rwr, &bad_recv)) return fail("ibv_post_recv", rc);

    char go = 'G', peer_go = 0; // the go-ahead: our receive is posted
    if (!transfer(conn, &go, 1, true) || !transfer(conn, &peer_go, 1, false) || peer_go != 'G')
        return fail("go-ahead", EPROTO);

    ibv_wc wc{};
    if (!wait_completion(cq, wc)) return fail("the client's message", ETIMEDOUT);
    const std::uint32_t got = wc.byte_len;
    sge.length = got;
    ibv_send_wr swr{};
    swr.wr_id = 2;
    swr.sg_list = &sge;
    swr.num_sge = 1;
    swr.opcode = IBV_WR_SEND;
    swr.send_flags = IBV_SEND_SIGNALED;
    ibv_send_wr* bad_send;
    if (int rc = ibv_post_send(qp, &swr, &bad_send)) return fail("ibv_post_send", rc);
    if (!wait_completion(cq, wc)) return fail("the reply", ETIMEDOUT);
    std::printf("answered %u bytes\n", got);

    ::close(conn);
    ibv_destroy_qp(qp);
    ibv_destroy_cq(cq);
    ibv_dereg_mr(mr);
    munmap(memory, buffer_size);
    ibv_dealloc_pd(pd);
    ibv_close_device(ctx);
    return 0;
}
