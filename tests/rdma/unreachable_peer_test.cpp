// A peer whose endpoint names a GID nobody answers at, with a handshake
// that is otherwise well-formed, against both roles of the TCP handshake:
//  - a host that answers ARP but not RoCE (in the VM, qemu's gateway): the
//    QP reaches RTS, and only the transport finds out. The first SEND (rcq
//    as the tcp server) and the first RDMA WRITE (rcq as the tcp client)
//    end in "transport retry counter exceeded" within the retry budget,
//    with a hint that names the peer's GID;
//  - an address this host has no route to (198.51.100.1, a documentation
//    address): the step that needs the peer's address, INIT -> RTR, fails
//    (ETIMEDOUT after the kernel's 1 s of address resolution), with a hint
//    that names the GID.
// None hangs.
//
// The bound: with timeout 14 the local ACK timeout is 4.096 us * 2^14 =
// 67.1 ms, and retry_cnt 6 sends the request 7 times, so the error is due
// after 7 * 67.1 ms = 0.47 s; the IB spec lets a device wait up to 4 times
// the timeout (1.9 s). The test allows 5 s, the rest being margin for an
// emulated VM on a loaded host.
#include "rdma_env.hpp"

#include <rcq/rcq.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>

namespace {

using namespace std::chrono_literals;
using testing::HasSubstr;
using clock_type = std::chrono::steady_clock;
using rcq::detail::unique_fd;

constexpr double bound_seconds = 5.0;
constexpr double nominal_seconds = 7 * 4.096e-6 * (1 << 14); // 0.47 s

// The hostile peer's endpoint: well-formed, with a memory token, and the
// IPv4-mapped GID of `ip`.
rcq::endpoint unreachable_endpoint(const std::string& ip) {
    rcq::endpoint ep{};
    ep.qpn = 0x1234;
    ep.psn = 0x42;
    ep.gid = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
    ::inet_pton(AF_INET, ip.c_str(), ep.gid.data() + 12);
    ep.remote_addr = 0x10000;
    ep.rkey = 0x77;
    ep.remote_len = 4096;
    ep.mtu = 1024;
    ep.initiator_depth = 1;
    ep.responder_resources = 1;
    return ep;
}

std::string host() {
    const char* ip = std::getenv("RCQ_IP");
    return ip != nullptr ? ip : "127.0.0.1";
}

rcq::connection_options options() {
    rcq::connection_options o;
    o.device = rdma_test::device_name();
    o.gid_index = rdma_test::gid_index();
    o.completion_timeout = 20s; // the transport's error must come first
    return o;
}

// The hostile peer's side of the TCP handshake, speaking the protocol
// correctly: our endpoint in, its endpoint out (in the order of its role),
// the go-ahead both ways; then it keeps the connection open (its process is
// "alive") until `done` is ready. Any failure just ends it.
void speak_tcp(int fd, bool as_server, const rcq::endpoint& ep, std::shared_future<void> done) {
    try {
        const auto dl = rcq::deadline::after(20s);
        const auto ours = rcq::encode(ep);
        std::array<std::byte, rcq::endpoint_wire_size> theirs{};
        if (!as_server) rcq::detail::write_all(fd, ours, dl, "hostile client: endpoint");
        rcq::detail::read_exact(fd, theirs, dl, "hostile peer: endpoint");
        if (as_server) rcq::detail::write_all(fd, ours, dl, "hostile server: endpoint");
        const std::array<std::byte, 8> go{std::byte{'R'}, std::byte{'C'}, std::byte{'Q'}, std::byte{'G'}};
        rcq::detail::write_all(fd, go, dl, "hostile peer: go-ahead");
        std::array<std::byte, 8> their_go{};
        rcq::detail::read_exact(fd, their_go, dl, "hostile peer: go-ahead");
    } catch (const rcq::error&) {
        return; // the rcq side gave up first
    }
    done.wait();
}

using conn_type = rcq::connection<rcq::buffer::owned<1 << 16>>;

// rcq as the tcp server, against a hostile client whose endpoint names `ip`;
// `body` gets the connection's constructor to call.
template <class Body>
void against_client(const std::string& ip, Body body) {
    auto listening = rcq::handshake::tcp::server(0, 20s);
    const std::uint16_t port = listening.port();
    std::promise<void> finished;
    std::shared_future<void> done = finished.get_future().share();
    auto peer = std::async(std::launch::async, [&] {
        unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        ::inet_pton(AF_INET, host().c_str(), &addr.sin_addr);
        if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return;
        speak_tcp(fd.get(), false, unreachable_endpoint(ip), done);
    });
    body([&] { return std::make_unique<conn_type>(std::move(listening), options()); });
    finished.set_value();
    peer.get();
}

// rcq as the tcp client, against a hostile server whose endpoint names `ip`.
template <class Body>
void against_server(const std::string& ip, Body body) {
    unique_fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    ::inet_pton(AF_INET, host().c_str(), &addr.sin_addr);
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(listener.get(), 1), 0);
    socklen_t len = sizeof addr;
    ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    std::promise<void> finished;
    std::shared_future<void> done = finished.get_future().share();
    auto peer = std::async(std::launch::async, [&] {
        pollfd p{listener.get(), POLLIN, 0};
        if (::poll(&p, 1, 20000) != 1) return;
        unique_fd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        speak_tcp(fd.get(), true, unreachable_endpoint(ip), done);
    });
    body([&] {
        return std::make_unique<conn_type>(rcq::handshake::tcp::client(host(), ntohs(addr.sin_port), 20s),
                                           options());
    });
    finished.set_value();
    peer.get();
}

// Waits for the one request `post` posted and checks how it ends.
template <class Post>
void expect_retry_exceeded(conn_type& conn, const std::string& ip, const char* what, Post post) {
    ASSERT_EQ(post(), 0);
    const auto start = clock_type::now();
    try {
        conn.wait(what);
        ADD_FAILURE() << what << " to an unreachable GID succeeded";
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.what(), HasSubstr("transport retry counter exceeded"));
        EXPECT_THAT(e.what(), HasSubstr("no ACK came from the peer's GID ::ffff:" + ip + " (QPN 0x1234)"));
        EXPECT_THAT(e.what(), HasSubstr("check that this host reaches that address"));
    }
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    std::printf("[ figures  ] %s to a GID that does not answer: retry exceeded after %.3f s "
                "(nominal %.2f s, bound %.1f s)\n",
                what, seconds, nominal_seconds, bound_seconds);
    EXPECT_LT(seconds, bound_seconds);
    EXPECT_GT(seconds, nominal_seconds / 4) << "an error before the retries could have run";
}

// In the VM, qemu's gateway: it answers ARP, so the packets leave, but it
// speaks no RoCE.
const char* silent_host() { return std::getenv("RCQ_GATEWAY_IP"); }

TEST(UnreachablePeer, AsServerTheFirstSendToASilentGidEndsInRetryExceeded) {
    if (silent_host() == nullptr) GTEST_SKIP() << "RCQ_GATEWAY_IP is not set (inner.sh sets it in the VM)";
    const std::string ip = silent_host();
    against_client(ip, [&](auto make) {
        auto conn = make();
        EXPECT_EQ(conn->remote(), unreachable_endpoint(ip));
        conn->ready(); // in RTS: nothing so far needed the peer's GID to answer
        expect_retry_exceeded(*conn, ip, "a SEND", [&] { return conn->post_send(0, 64, 1); });
        EXPECT_FALSE(conn->peer_gone());
    });
}

TEST(UnreachablePeer, AsClientTheFirstWriteToASilentGidEndsInRetryExceeded) {
    if (silent_host() == nullptr) GTEST_SKIP() << "RCQ_GATEWAY_IP is not set (inner.sh sets it in the VM)";
    const std::string ip = silent_host();
    against_server(ip, [&](auto make) {
        auto conn = make();
        conn->ready();
        const auto region = rcq::remote_region::of(conn->remote());
        const ibv_sge from = rcq::local(conn->buffer_policy(), 0, 256);
        rcq::write_op write(from, region.slice(0, 256), 2);
        expect_retry_exceeded(*conn, ip, "an RDMA WRITE", [&] { return conn->queue_pair().post_send(write); });
    });
}

// No route to the peer's address: found when the QP is given the path.
void expect_no_route(auto make) {
    const auto start = clock_type::now();
    try {
        auto conn = make();
        ADD_FAILURE() << "a connection towards an address without a route was made";
    } catch (const rcq::error& e) {
        std::printf("[ figures  ] no route: %s\n", e.what());
        EXPECT_EQ(e.code().value(), ETIMEDOUT); // the kernel's address resolution gave up (1 s)
        EXPECT_THAT(e.what(), HasSubstr("ibv_modify_qp(INIT->RTR"));
        EXPECT_THAT(e.what(), HasSubstr("the kernel found no route or no neighbour (ARP) answer for the "
                                        "peer's GID ::ffff:198.51.100.1"));
    }
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    std::printf("[ figures  ] no route to the peer's GID: refused after %.3f s\n", seconds);
    EXPECT_LT(seconds, bound_seconds);
}

TEST(UnreachablePeer, AGidWithoutARouteIsRefusedAtRtrInBothRoles) {
    if (std::getenv("RCQ_IN_VM") == nullptr) GTEST_SKIP() << "needs the VM, whose only route is its /24";
    const std::string ip = "198.51.100.1";
    against_client(ip, [](auto make) { expect_no_route(make); });
    against_server(ip, [](auto make) { expect_no_route(make); });
}

} // namespace
