// The QP state machine on a real device: every transition, checked against
// what the driver reports, and data through a QP pair connected to itself.
#include "rdma_env.hpp"

#include <rcq/rcq.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string_view>

namespace {

ibv_qp_state driver_state(ibv_qp* q) {
    ibv_qp_attr attr{};
    ibv_qp_init_attr init{};
    EXPECT_EQ(ibv_query_qp(q, &attr, IBV_QP_STATE, &init), 0);
    return attr.qp_state;
}

struct resources {
    rcq::context ctx = rcq::context::open(rdma_test::device_name());
    rcq::gid_entry gid = rcq::choose_gid(ctx, 1, rdma_test::gid_index());
    ibv_port_attr port = ctx.port(1);
    rcq::pd pd{ctx};
    rcq::cq cq{ctx, 64};
};

rcq::rtr_attrs towards(const resources& r, std::uint32_t qpn, std::uint32_t psn) {
    return rdma_test::towards(r.gid, r.port, qpn, psn);
}

TEST(Transitions, DeviceIsRealAndActive) {
    resources r;
    rdma_test::require_real_device(r.ctx);
    rcq::device_list devices;
    EXPECT_THAT(devices.names(), testing::HasSubstr(r.ctx.name()));
    if (std::getenv("RCQ_IN_VM") != nullptr) { // the harness's VM: Soft-RoCE, for real
        EXPECT_EQ(r.ctx.name(), "rxe0");
    }
    EXPECT_EQ(r.gid.type, rcq::gid_type::roce_v2);
    EXPECT_FALSE(rcq::gid_table(r.ctx, 1).empty());
}

TEST(Transitions, EachStepReachesTheStateTheTypeNames) {
    resources r;
    rcq::qp<rcq::state::reset> fresh(r.pd, r.cq);
    EXPECT_EQ(driver_state(fresh.get()), IBV_QPS_RESET);
    auto a = std::move(fresh).to_init();
    EXPECT_EQ(driver_state(a.get()), IBV_QPS_INIT);
    const std::uint32_t own_qpn = a.qp_num();
    auto b = std::move(a).to_rtr(towards(r, own_qpn, 0x1234));
    EXPECT_EQ(driver_state(b.get()), IBV_QPS_RTR);
    auto c = std::move(b).to_rts({.sq_psn = 0x1234});
    EXPECT_EQ(driver_state(c.get()), IBV_QPS_RTS);
    auto d = std::move(c).to_error();
    EXPECT_EQ(driver_state(d.get()), IBV_QPS_ERR);
    auto e = std::move(d).to_reset();
    EXPECT_EQ(driver_state(e.get()), IBV_QPS_RESET);
    auto again = std::move(e).to_init();
    EXPECT_EQ(driver_state(again.get()), IBV_QPS_INIT);
}

TEST(Transitions, BadAttributesGiveAnErrorNamingTheStep) {
    resources r;
    rcq::qp<rcq::state::reset> fresh(r.pd, r.cq);
    try {
        auto bad = std::move(fresh).to_init({.port_num = 9});
        (void)bad;
        FAIL() << "port 9 was accepted";
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.what(), testing::HasSubstr("ibv_modify_qp(RESET->INIT"));
        EXPECT_THAT(e.what(), testing::HasSubstr("port"));
    }
}

TEST(Transitions, AWrongGidIndexIsRefusedWithTheRightOne) {
    resources r;
    try {
        (void)rcq::choose_gid(r.ctx, 1, 9999);
        FAIL() << "GID index 9999 was accepted";
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.what(), testing::HasSubstr("GID index 9999"));
        EXPECT_THAT(e.what(), testing::HasSubstr("index " + std::to_string(r.gid.index)));
    }
}

TEST(Transitions, AnUnknownDeviceNamesTheDevicesPresent) {
    try {
        (void)rcq::context::open("no_such_device");
        FAIL();
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.what(), testing::HasSubstr("'no_such_device' not found"));
        EXPECT_THAT(e.what(), testing::HasSubstr("devices present"));
    }
}

// Two QPs of one process connected to each other: a full RC exchange through
// the driver, with every byte checked and the port's packet counters rising.
TEST(Transitions, SendAndReceiveBetweenTwoQps) {
    resources r;
    const auto before = rdma_test::read_packet_counts(r.ctx.name());
    rcq::cq cq_b(r.ctx, 64);
    std::vector<std::byte> memory(8192);
    rcq::mr region(r.pd, memory);

    auto a0 = rcq::qp<rcq::state::reset>(r.pd, r.cq).to_init();
    auto b0 = rcq::qp<rcq::state::reset>(r.pd, cq_b).to_init();
    const std::uint32_t qpn_a = a0.qp_num(), qpn_b = b0.qp_num();

    ibv_sge recv_sge{reinterpret_cast<std::uintptr_t>(memory.data() + 4096), 4096, region.lkey()};
    ibv_recv_wr recv{};
    recv.wr_id = 7;
    recv.sg_list = &recv_sge;
    recv.num_sge = 1;
    ASSERT_EQ(b0.post_recv(recv), 0); // in INIT, before the peer can send

    auto a = std::move(a0).to_rtr(towards(r, qpn_b, 200)).to_rts({.sq_psn = 100});
    auto b = std::move(b0).to_rtr(towards(r, qpn_a, 100)).to_rts({.sq_psn = 200});

    for (std::size_t i = 0; i < 4096; ++i) memory[i] = std::byte(i * 13 + 1);
    ibv_sge send_sge{reinterpret_cast<std::uintptr_t>(memory.data()), 4096, region.lkey()};
    ibv_send_wr send{};
    send.wr_id = 9;
    send.sg_list = &send_sge;
    send.num_sge = 1;
    send.opcode = IBV_WR_SEND;
    send.send_flags = IBV_SEND_SIGNALED;
    ASSERT_EQ(a.post_send(send), 0);

    rcq::poll::busy poller(r.ctx);
    ibv_wc wc{};
    ASSERT_EQ(poller.wait(cq_b, {&wc, 1}, rcq::deadline::after(std::chrono::seconds(5))), 1);
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
    EXPECT_EQ(wc.opcode, IBV_WC_RECV);
    EXPECT_EQ(wc.wr_id, 7u);
    EXPECT_EQ(wc.byte_len, 4096u);
    ASSERT_EQ(poller.wait(r.cq, {&wc, 1}, rcq::deadline::after(std::chrono::seconds(5))), 1);
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
    EXPECT_EQ(wc.wr_id, 9u);
    EXPECT_EQ(std::memcmp(memory.data(), memory.data() + 4096, 4096), 0);

    const auto after = rdma_test::read_packet_counts(r.ctx.name());
    EXPECT_GT(after.sent, before.sent) << "no packet went through " << r.ctx.name();
    EXPECT_GT(after.received, before.received);
}

TEST(Transitions, WaitingWithNothingPostedTimesOutInsteadOfHanging) {
    resources r;
    rcq::poll::busy poller(r.ctx);
    ibv_wc wc{};
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(poller.wait(r.cq, {&wc, 1}, rcq::deadline::after(std::chrono::milliseconds(100))), 0);
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
}

} // namespace
