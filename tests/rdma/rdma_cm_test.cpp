// rcq::handshake::rdma_cm on a real device: a connection through the RDMA
// CM, and the bad cases, each a clear error inside its deadline: nobody
// listening, a peer that rejects, a peer that disconnects mid-transfer, an
// address with no RDMA device behind it, a host that never answers.
#include "rdma_env.hpp"

#include <rcq/rcq.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <iostream>
#include <string>

namespace {

using rcq::handshake::rdma_cm;
using cm_connection = rcq::connection<rdma_cm>;
using clock_type = std::chrono::steady_clock;

rcq::connection_options options() {
    rcq::connection_options o;
    o.device = rdma_test::device_name();
    return o;
}

std::string device_ip() {
    const char* ip = std::getenv("RCQ_IP");
    return ip != nullptr ? ip : "127.0.0.1";
}

// A port nobody listens on: bound by a listener that is then closed.
std::uint16_t free_cm_port() {
    return rdma_cm::server(0, std::chrono::seconds(1), device_ip()).port();
}

// Runs `f`, which must throw rcq::error; returns its message and checks that
// it came before `budget` plus a margin for a loaded machine.
template <class F>
std::string error_of(F f, std::chrono::seconds budget) {
    const auto start = clock_type::now();
    try {
        f();
    } catch (const rcq::error& e) {
        EXPECT_LT(clock_type::now() - start, budget + std::chrono::seconds(30)) << e.what();
        std::cout << "  error: " << e.what() << '\n';
        return e.what();
    }
    ADD_FAILURE() << "no error";
    return {};
}

TEST(RdmaCm, ConnectsSendsAndAgreesOnTheReadDepth) {
    auto listening = rdma_cm::server(0, std::chrono::seconds(30), device_ip());
    const std::uint16_t port = listening.port();
    auto opts = options();
    opts.remote_access = IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;
    auto server = std::async(std::launch::async, [&] {
        cm_connection conn(std::move(listening), opts);
        EXPECT_EQ(conn.post_recv(0, 256, 1), 0);
        const ibv_wc got = conn.wait("the client's SEND");
        EXPECT_EQ(got.byte_len, 256u);
        // The client's memory token came in the connect request's private data.
        EXPECT_TRUE(conn.remote().has_memory());
        EXPECT_GT(conn.handshake().initiator_depth(), 0);
        conn.handshake().wait_for_disconnect(std::chrono::seconds(30));
        return conn.local().qpn;
    });
    cm_connection conn(rdma_cm::client(device_ip(), port, std::chrono::seconds(30)), opts);
    // The server's token came in the reply's private data.
    ASSERT_TRUE(conn.remote().has_memory());
    EXPECT_EQ(conn.remote().remote_len, conn.buffer().size());
    EXPECT_EQ(conn.handshake().initiator_depth(), conn.handshake().responder_resources());
    EXPECT_EQ(conn.queue_pair().get()->context, conn.device());
    for (std::size_t i = 0; i < 256; ++i) conn.buffer()[i] = std::byte(i);
    ASSERT_EQ(conn.post_send(0, 256, 2), 0);
    EXPECT_EQ(conn.wait("the SEND").wr_id, 2u);
    const std::uint32_t server_qpn = conn.remote().qpn;
    conn.handshake().disconnect();
    EXPECT_EQ(server.get(), server_qpn);
}

TEST(RdmaCm, NobodyListeningIsRejectedUntilTheDeadline) {
    const std::uint16_t port = free_cm_port();
    const std::string what = error_of(
        [&] { cm_connection conn(rdma_cm::client(device_ip(), port, std::chrono::seconds(2)), options()); },
        std::chrono::seconds(2));
    EXPECT_THAT(what, testing::HasSubstr("RDMA_CM_EVENT_REJECTED (reason 8, invalid service ID"));
    EXPECT_THAT(what, testing::HasSubstr("nothing listens on " + device_ip() + ":" + std::to_string(port)));
}

TEST(RdmaCm, AServerThatNeverSeesAClientTimesOut) {
    const std::string what = error_of(
        [&] { cm_connection conn(rdma_cm::server(0, std::chrono::seconds(1), device_ip()), options()); },
        std::chrono::seconds(1));
    EXPECT_THAT(what, testing::HasSubstr("waiting for a client on port"));
    EXPECT_THAT(what, testing::HasSubstr("nothing within the budget of 1 s"));
}

TEST(RdmaCm, APeerThatRejectsIsNamed) {
    // An rcq server expects rcq's endpoint as private data; a client that
    // sends none is refused, and each side says why.
    auto listening = rdma_cm::server(0, std::chrono::seconds(20), device_ip());
    const std::uint16_t port = listening.port();
    auto server = std::async(std::launch::async, [&] {
        return error_of([&] { cm_connection conn(std::move(listening), options()); }, std::chrono::seconds(20));
    });
    const std::string what = error_of(
        [&] {
            cm_connection conn(rdma_cm::client(device_ip(), port, std::chrono::seconds(20),
                                               rdma_cm::private_data::none),
                               options());
        },
        std::chrono::seconds(20));
    EXPECT_THAT(what, testing::HasSubstr("RDMA_CM_EVENT_REJECTED (reason 28, consumer defined"));
    EXPECT_THAT(server.get(), testing::HasSubstr("the private data of client"));
}

TEST(RdmaCm, ADisconnectMidTransferIsReported) {
    auto listening = rdma_cm::server(0, std::chrono::seconds(20), device_ip());
    const std::uint16_t port = listening.port();
    std::promise<void> client_waiting;
    auto server = std::async(std::launch::async, [&] {
        cm_connection conn(std::move(listening), options());
        client_waiting.get_future().wait();
        // Goes away without sending the message the client waits for.
    });
    auto opts = options();
    opts.completion_timeout = std::chrono::seconds(3);
    cm_connection conn(rdma_cm::client(device_ip(), port, std::chrono::seconds(20)), opts);
    ASSERT_EQ(conn.post_recv(0, 64, 1), 0);
    client_waiting.set_value();
    server.get();
    const std::string what = error_of([&] { conn.wait("the server's message"); }, std::chrono::seconds(3));
    EXPECT_THAT(what, testing::HasSubstr("the peer disconnected (RDMA_CM_EVENT_DISCONNECTED)"));
    EXPECT_TRUE(conn.handshake().peer_disconnected());
}

// inner.sh gives the VM a dummy network device with this address and no
// RDMA device on it.
const char* no_rdma_ip() { return std::getenv("RCQ_NO_RDMA_IP"); }

TEST(RdmaCm, AServerOnAnAddressWithoutRdmaDeviceIsRefused) {
    if (no_rdma_ip() == nullptr) GTEST_SKIP() << "RCQ_NO_RDMA_IP is not set (inner.sh sets it in the VM)";
    const std::string what = error_of([] { (void)rdma_cm::server(0, std::chrono::seconds(5), no_rdma_ip()); },
                                      std::chrono::seconds(5));
    EXPECT_THAT(what, testing::HasSubstr("rdma_bind_addr(" + std::string(no_rdma_ip())));
    EXPECT_THAT(what, testing::HasSubstr("no RDMA device has the address"));
}

TEST(RdmaCm, AClientTowardsAnAddressWithoutRdmaDeviceIsRefused) {
    if (no_rdma_ip() == nullptr) GTEST_SKIP() << "RCQ_NO_RDMA_IP is not set (inner.sh sets it in the VM)";
    // Another address on the dummy device's subnet: the route leaves
    // through a network device that has no RDMA device.
    std::string peer = no_rdma_ip();
    peer.back() = peer.back() == '1' ? '2' : '1';
    const std::string what = error_of(
        [&] { cm_connection conn(rdma_cm::client(peer, 7471, std::chrono::seconds(5)), options()); },
        std::chrono::seconds(5));
    EXPECT_THAT(what, testing::HasSubstr("resolving the address " + peer));
    EXPECT_THAT(what, testing::HasSubstr("RoCE interface"));
}

TEST(RdmaCm, AHostThatNeverAnswersTimesOut) {
    // The VM's gateway answers ARP but has no RDMA: the connect request is
    // lost, and the deadline ends the wait for the reply.
    const char* gateway = std::getenv("RCQ_GATEWAY_IP");
    if (gateway == nullptr) GTEST_SKIP() << "RCQ_GATEWAY_IP is not set (inner.sh sets it in the VM)";
    const std::string what = error_of(
        [&] { cm_connection conn(rdma_cm::client(gateway, 7471, std::chrono::seconds(3)), options()); },
        std::chrono::seconds(3));
    EXPECT_THAT(what, testing::AnyOf(testing::HasSubstr("nothing within the budget of 3 s"),
                                     testing::HasSubstr("RDMA_CM_EVENT_UNREACHABLE")));
}

} // namespace
