// RoCE settings agreed with the peer, on a real device: path MTU, READ and
// atomic depth, traffic class and service level (read back from the QP with
// ibv_query_qp), the retry defaults ending in clear errors, the liveness
// signal of the TCP handshake, and the blocking poller with two CQs on one
// completion channel.
#include "qp_pair.hpp"

#include <rcq/rcq.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <future>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;
using testing::HasSubstr;
using clock_type = std::chrono::steady_clock;

rcq::connection_options options() {
    rcq::connection_options o;
    o.device = rdma_test::device_name();
    o.gid_index = rdma_test::gid_index();
    return o;
}

std::string loopback_host() {
    const char* ip = std::getenv("RCQ_IP");
    return ip != nullptr ? ip : "127.0.0.1";
}

ibv_qp_attr query(ibv_qp* qp) {
    ibv_qp_attr attr{};
    ibv_qp_init_attr init{};
    EXPECT_EQ(ibv_query_qp(qp, &attr,
                           IBV_QP_PATH_MTU | IBV_QP_AV | IBV_QP_MAX_QP_RD_ATOMIC |
                               IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY,
                           &init),
              0);
    return attr;
}

using conn_type = rcq::connection<rcq::buffer::owned<1 << 16>>;

// A server and a client connection of this process, joined over loopback
// TCP; `server_body` runs on the server's thread, `client_body` here.
template <class ServerBody, class ClientBody>
void run_pair(const rcq::connection_options& server_opts, const rcq::connection_options& client_opts,
              ServerBody server_body, ClientBody client_body) {
    // Both ends are this process, over loopback: a memory token may go
    // without authentication.
    auto listening = rcq::handshake::tcp::server(0, 20s);
    listening.allow_memory_without_secret();
    const std::uint16_t port = listening.port();
    auto server = std::async(std::launch::async, [&] {
        conn_type conn(std::move(listening), server_opts);
        server_body(conn);
    });
    {
        auto connecting = rcq::handshake::tcp::client(loopback_host(), port, 20s);
        connecting.allow_memory_without_secret();
        conn_type conn(std::move(connecting), client_opts);
        client_body(conn);
    }
    server.get();
}

TEST(RoceSettings, BothSidesUseTheSmallerPathMtu) {
    auto small = options();
    small.max_mtu = 256;
    std::uint16_t server_saw = 0;
    ibv_mtu server_mtu{};
    run_pair(
        small, options(),
        [&](conn_type& conn) {
            server_mtu = query(conn.queue_pair().get()).path_mtu;
            server_saw = conn.remote().mtu;
            ASSERT_EQ(conn.post_recv(0, 4096, 1), 0);
            conn.ready();
            const ibv_wc got = conn.wait("a 4 KiB message in 256-byte packets");
            EXPECT_EQ(got.byte_len, 4096u);
            for (std::size_t i = 0; i < 4096; ++i)
                ASSERT_EQ(conn.buffer()[i], std::byte(i * 13 + 1)) << "byte " << i;
            conn.ready();
        },
        [&](conn_type& conn) {
            EXPECT_EQ(conn.local().mtu, rcq::mtu_bytes(rcq::query_port(conn.device(), 1).active_mtu));
            EXPECT_EQ(conn.remote().mtu, 256);
            EXPECT_EQ(query(conn.queue_pair().get()).path_mtu, IBV_MTU_256);
            conn.ready();
            for (std::size_t i = 0; i < 4096; ++i) conn.buffer()[i] = std::byte(i * 13 + 1);
            ASSERT_EQ(conn.post_send(0, 4096, 2), 0);
            conn.wait("the SEND");
            conn.ready();
        });
    EXPECT_EQ(server_mtu, IBV_MTU_256);
    EXPECT_GT(server_saw, 256); // the client advertised its port's MTU, larger
}

TEST(RoceSettings, ReadDepthIsAgreedAndSeveralReadsRunAtOnce) {
    const ibv_device_attr dev = rcq::context::open(rdma_test::device_name()).attributes();
    auto server_opts = options();
    server_opts.remote_access = IBV_ACCESS_REMOTE_READ;
    server_opts.responder_resources = 4; // the client may have 4 READs in flight, not 8
    auto client_opts = options();
    client_opts.initiator_depth = 8;
    ibv_qp_attr server_attr{};
    run_pair(
        server_opts, client_opts,
        [&](conn_type& conn) {
            server_attr = query(conn.queue_pair().get());
            for (std::size_t i = 0; i < conn.buffer().size(); ++i) conn.buffer()[i] = std::byte(i * 7 + i / 251);
            conn.ready();
            conn.ready(); // until the client has read
        },
        [&](conn_type& conn) {
            const ibv_qp_attr attr = query(conn.queue_pair().get());
            EXPECT_EQ(attr.max_rd_atomic, 4);
            EXPECT_EQ(conn.local().initiator_depth, 8);
            EXPECT_EQ(conn.remote().responder_resources, 4);
            conn.ready();
            // Eight READs of 4 KiB posted at once; the QP keeps four in flight.
            const rcq::remote_region server = rcq::remote_region::of(conn.remote());
            for (std::uint64_t k = 0; k < 8; ++k) {
                const ibv_sge into = rcq::local(conn.buffer_policy(), 32768 + k * 4096, 4096);
                rcq::read_op read(into, server.slice(k * 4096, 4096), k);
                ASSERT_EQ(conn.queue_pair().post_send(read), 0);
            }
            for (int k = 0; k < 8; ++k) EXPECT_EQ(conn.wait("a READ").opcode, IBV_WC_RDMA_READ);
            for (std::size_t i = 0; i < 32768; ++i)
                ASSERT_EQ(conn.buffer()[32768 + i], std::byte(i * 7 + i / 251)) << "byte " << i;
            conn.ready();
        });
    // The server accepts as many as the client asked for, within its 4.
    EXPECT_EQ(server_attr.max_dest_rd_atomic, 4);
    // Its own READ depth: the defaults of both sides, min(16, the limits).
    EXPECT_EQ(server_attr.max_rd_atomic,
              std::min(16, std::min(dev.max_qp_init_rd_atom, dev.max_qp_rd_atom)));
}

TEST(RoceSettings, DefaultsAreTheDevicesLimitUpToSixteenAndMoreThanItIsRefused) {
    const ibv_device_attr dev = rcq::context::open(rdma_test::device_name()).attributes();
    const int expected = std::min(16, std::min(dev.max_qp_init_rd_atom, dev.max_qp_rd_atom));
    run_pair(
        options(), options(), [&](conn_type& conn) { conn.ready(); },
        [&](conn_type& conn) {
            const ibv_qp_attr attr = query(conn.queue_pair().get());
            EXPECT_EQ(attr.max_rd_atomic, expected);
            EXPECT_EQ(attr.max_dest_rd_atomic, expected);
            EXPECT_EQ(attr.retry_cnt, 6);
            EXPECT_EQ(attr.rnr_retry, 6);
            conn.ready();
        });

    auto greedy = options();
    greedy.initiator_depth = dev.max_qp_init_rd_atom + 1;
    try {
        conn_type conn(rcq::handshake::tcp::server(0, 1s), greedy);
        FAIL() << "an initiator depth above the device's limit was accepted";
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.what(), HasSubstr("initiator_depth " + std::to_string(dev.max_qp_init_rd_atom + 1) +
                                        " is more than"));
        EXPECT_THAT(e.what(), HasSubstr("max_qp_init_rd_atom " + std::to_string(dev.max_qp_init_rd_atom)));
    }
}

TEST(RoceSettings, TrafficClassAndServiceLevelReachTheQp) {
    auto marked = options();
    marked.traffic_class = 26 << 2; // DSCP 26 (AF31)
    marked.service_level = 3;
    run_pair(
        marked, marked,
        [&](conn_type& conn) {
            const ibv_qp_attr attr = query(conn.queue_pair().get());
            EXPECT_EQ(attr.ah_attr.grh.traffic_class, 26 << 2);
            // The SL is not read back: rxe accepts it but does not keep it
            // (it has no VLAN priority to map it to); hardware does.
            ASSERT_EQ(conn.post_recv(0, 64, 1), 0);
            conn.ready();
            EXPECT_EQ(conn.wait("a marked SEND").byte_len, 64u);
        },
        [&](conn_type& conn) {
            conn.ready();
            ASSERT_EQ(conn.post_send(0, 64, 1), 0);
            conn.wait("a marked SEND");
        });

    auto bad = options();
    bad.service_level = 16;
    try {
        conn_type conn(rcq::handshake::tcp::server(0, 1s), bad);
        FAIL() << "service level 16 was accepted";
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.what(), HasSubstr("connection_options::service_level 16 is out of range"));
    }
}

TEST(RoceSettings, AQpnWithHighBitsSetIsMaskedTo24Bits) {
    rdma_test::qp_pair p;
    auto ai = std::move(p.a_side.qp).to_init({});
    auto bi = std::move(p.b_side.qp).to_init({});
    const ibv_sge into = rcq::local(p.b_side.region, 0, 64);
    rcq::recv_wr r(into, 1);
    ASSERT_EQ(bi.post_recv(r), 0);
    const std::uint32_t qa = ai.qp_num() | 0xff000000u, qb = bi.qp_num() | 0x5a000000u;
    auto a = std::move(ai).to_rtr(p.towards(qb, 200)).to_rts({.sq_psn = 100});
    auto b = std::move(bi).to_rtr(p.towards(qa, 100)).to_rts({.sq_psn = 200});
    rdma_test::fill(std::span(p.a_side.memory).first(64), 9);
    const ibv_sge from = rcq::local(p.a_side.region, 0, 64);
    rcq::send_op w(from, 2);
    ASSERT_EQ(a.post_send(w), 0);
    EXPECT_EQ(rdma_test::qp_pair::next(p.b_side.recv).status, IBV_WC_SUCCESS);
    EXPECT_EQ(std::memcmp(p.a_side.memory.data(), p.b_side.memory.data(), 64), 0);
}

// A SEND to a peer that posted no receive: with the default rnr_retry (6,
// not "for ever") it ends in an error naming the cause, not a silent stall.
TEST(RoceSettings, AMissingReceiveIsAClearErrorWithTheDefaults) {
    auto opts = options();
    opts.completion_timeout = 20s;
    run_pair(
        options(), opts,
        [&](conn_type& conn) {
            conn.ready(); // posts no receive
            conn.ready();
        },
        [&](conn_type& conn) {
            conn.ready();
            ASSERT_EQ(conn.post_send(0, 64, 7), 0);
            const auto start = clock_type::now();
            try {
                conn.wait("a SEND the peer has no receive for");
                ADD_FAILURE() << "the SEND succeeded without a receive";
            } catch (const rcq::error& e) {
                EXPECT_THAT(e.what(), HasSubstr("RNR retry counter exceeded"));
                EXPECT_THAT(e.what(), HasSubstr("the peer had no receive posted"));
            }
            std::printf("[ figures  ] RNR error after %.3f s with the default rnr_retry\n",
                        std::chrono::duration<double>(clock_type::now() - start).count());
            conn.ready();
        });
}

// The peer's process is gone (its connection destroyed): the transport
// reports it within the retry budget (retry_cnt 6 x 67 ms on rxe), and the
// TCP handshake's liveness signal names the cause.
TEST(RoceSettings, APeerThatLeavesIsReportedByTheTransportAndTheLivenessSignal) {
    auto listening = rcq::handshake::tcp::server(0, 20s);
    const std::uint16_t port = listening.port();
    auto server = std::async(std::launch::async, [&] {
        conn_type conn(std::move(listening), options());
        conn.ready();
        // Destroying the connection closes its QP and its TCP socket, as the
        // end of the process would.
    });
    auto opts = options();
    opts.completion_timeout = 20s;
    conn_type conn(rcq::handshake::tcp::client(loopback_host(), port, 20s), opts);
    conn.ready();
    server.get();
    const auto deadline = clock_type::now() + 10s;
    while (!conn.peer_gone() && clock_type::now() < deadline) std::this_thread::sleep_for(1ms);
    EXPECT_TRUE(conn.peer_gone());
    ASSERT_EQ(conn.post_send(0, 4096, 3), 0);
    const auto start = clock_type::now();
    try {
        conn.wait("a SEND to a peer that has gone");
        ADD_FAILURE() << "the SEND succeeded";
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.what(), HasSubstr("transport retry counter exceeded"));
        EXPECT_THAT(e.what(), HasSubstr("the peer closed its handshake connection"));
    }
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    std::printf("[ figures  ] retry exceeded after %.3f s with the defaults\n", seconds);
    EXPECT_LT(seconds, 15.0) << "the default retry_cnt must end in an error, not retry for ever";
}

// Two CQs on one completion channel: a wait on A that takes B's event must
// re-arm B, or B's next completion raises no event and a wait on B sleeps
// until its deadline with the completion already there.
TEST(RoceSettings, BlockingWaitOnOneCqDoesNotLoseTheOthersWakeUp) {
    rcq::context ctx = rcq::context::open(rdma_test::device_name());
    const rcq::gid_entry gid = rcq::choose_gid(ctx, 1, rdma_test::gid_index());
    const ibv_port_attr port = ctx.port(1);
    rcq::pd pd(ctx);
    rcq::poll::blocking poller(ctx);
    rcq::cq a = poller.make_cq(ctx, 16), b = poller.make_cq(ctx, 16);
    std::vector<std::byte> memory(4096);
    rcq::mr region(pd, memory, IBV_ACCESS_LOCAL_WRITE);
    rcq::qp<rcq::state::reset> x(pd, a), y(pd, b);
    auto xi = std::move(x).to_init({});
    auto yi = std::move(y).to_init({});
    for (std::uint64_t k = 0; k < 2; ++k) {
        const ibv_sge into = rcq::local(region, 2048 + k * 64, 64);
        rcq::recv_wr r(into, k);
        ASSERT_EQ(yi.post_recv(r), 0);
    }
    const std::uint32_t qx = xi.qp_num(), qy = yi.qp_num();
    auto xs = std::move(xi).to_rtr(rdma_test::towards(gid, port, qy, 2)).to_rts({.sq_psn = 1});
    auto ys = std::move(yi).to_rtr(rdma_test::towards(gid, port, qx, 1)).to_rts({.sq_psn = 2});
    (void)ys;
    // Unsignaled SENDs: only B (y's receives) gets completions.
    auto send_unsignaled = [&] {
        ibv_sge sge = rcq::local(region, 0, 64);
        ibv_send_wr wr{};
        wr.sg_list = &sge;
        wr.num_sge = 1;
        wr.opcode = IBV_WR_SEND;
        return xs.post_send(wr);
    };
    ASSERT_EQ(send_unsignaled(), 0);
    ibv_wc wc{};
    // A never completes; this wait takes B's event while it sleeps.
    EXPECT_EQ(poller.wait(a, {&wc, 1}, rcq::deadline::after(2s)), 0);
    EXPECT_EQ(poller.wait(b, {&wc, 1}, rcq::deadline::after(5s)), 1);
    EXPECT_EQ(wc.wr_id, 0u);
    // The second completion comes while the wait on B sleeps (the wait
    // polls B first, so it must start before the SEND lands). Without an
    // event the wait would find it only by its last look at the deadline.
    auto later = std::async(std::launch::async, [&] {
        std::this_thread::sleep_for(300ms);
        return send_unsignaled();
    });
    const rcq::deadline until = rcq::deadline::after(10s);
    EXPECT_EQ(poller.wait(b, {&wc, 1}, until), 1);
    EXPECT_FALSE(until.expired())
        << "B's second completion raised no event: B was not re-armed, and the wait found it "
           "only at its deadline";
    EXPECT_EQ(wc.wr_id, 1u);
    EXPECT_EQ(later.get(), 0);
}

} // namespace
