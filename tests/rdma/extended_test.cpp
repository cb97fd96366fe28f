// The extended verbs API (ibv_wr_* on an ibv_qp_ex, start/next/end polling on
// an ibv_cq_ex) chosen at compile time, on a real device: every operation,
// single and chained, with every byte checked.
#include "qp_pair.hpp"

#include <rcq/extended.hpp>
#include <rcq/rcq.hpp>

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

namespace {

using rdma_test::fill;

// Two QPs made with the extended API, each completing into one cq_ex.
struct extended_pair {
    static constexpr int access = rdma_test::qp_pair::full_access;

    extended_pair()
        : ctx(rcq::context::open(rdma_test::device_name())),
          gid(rcq::choose_gid(ctx, 1, rdma_test::gid_index())),
          port(ctx.port(1)),
          pd(ctx),
          cq_a(ctx, 256),
          cq_b(ctx, 256),
          mem_a(1 << 16),
          mem_b(1 << 16),
          mr_a(pd, mem_a, access),
          mr_b(pd, mem_b, access) {
        rcq::qp_caps caps = rdma_test::qp_pair::default_caps();
        caps.send_ops = rcq::all_rc_send_ops;
        const unsigned remote = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
        auto ai = rcq::qp<rcq::state::reset>(pd, cq_a, caps).to_init({.access = remote});
        auto bi = rcq::qp<rcq::state::reset>(pd, cq_b, caps).to_init({.access = remote});
        for (int i = 0; i < 16; ++i) {
            recv_sge[i] = rcq::local(mr_b, 32768 + i * 1024, 1024);
            rcq::recv_wr r(recv_sge[i], 1000 + i);
            EXPECT_EQ(bi.post_recv(r), 0);
        }
        const auto qa = ai.qp_num(), qb = bi.qp_num();
        a.emplace(std::move(ai).to_rtr(towards(qb, 7)).to_rts({.sq_psn = 9}));
        b.emplace(std::move(bi).to_rtr(towards(qa, 9)).to_rts({.sq_psn = 7}));
    }

    rcq::rtr_attrs towards(std::uint32_t qpn, std::uint32_t psn) const {
        return rdma_test::towards(gid, port, qpn, psn);
    }
    rcq::remote_region b_memory() const {
        return {reinterpret_cast<std::uintptr_t>(mem_b.data()), mr_b.rkey(), mem_b.size()};
    }
    static ibv_wc next(const rcq::cq_ex& c) {
        rcq::poll::busy poller(nullptr);
        ibv_wc wc{};
        EXPECT_EQ(poller.wait(c, {&wc, 1}, rcq::deadline::after(std::chrono::seconds(5))), 1);
        return wc;
    }

    rcq::context ctx;
    rcq::gid_entry gid;
    ibv_port_attr port;
    rcq::pd pd;
    rcq::cq_ex cq_a, cq_b;
    std::vector<std::byte> mem_a, mem_b;
    rcq::mr mr_a, mr_b;
    std::array<ibv_sge, 16> recv_sge;
    std::optional<rcq::qp<rcq::state::rts>> a, b;
};

TEST(Extended, SendWithImmediateAndTheExtendedCompletion) {
    extended_pair p;
    rcq::send_queue<64, 1, rcq::api::extended> sq(std::move(*p.a));
    fill(std::span(p.mem_a).first(700), 11);
    const ibv_sge from = rcq::local(p.mr_a, 0, 700);
    rcq::send_imm_op w(from, 5, 0xABCD);
    ASSERT_EQ(sq.post(w), 0);
    const ibv_wc got = extended_pair::next(p.cq_b);
    ASSERT_EQ(got.status, IBV_WC_SUCCESS) << ibv_wc_status_str(got.status);
    EXPECT_EQ(got.opcode, IBV_WC_RECV);
    EXPECT_EQ(got.wr_id, 1000u);
    EXPECT_EQ(got.byte_len, 700u);
    EXPECT_EQ(got.qp_num, p.b->qp_num());
    EXPECT_EQ(ntohl(got.imm_data), 0xABCDu);
    const ibv_wc sent = extended_pair::next(p.cq_a);
    EXPECT_EQ(sent.status, IBV_WC_SUCCESS);
    EXPECT_EQ(sent.opcode, IBV_WC_SEND);
    EXPECT_EQ(sent.wr_id, 5u);
    EXPECT_EQ(std::memcmp(p.mem_a.data(), p.mem_b.data() + 32768, 700), 0);
}

TEST(Extended, ChainedWritesThenReadAndAtomics) {
    extended_pair p;
    rcq::send_queue<64, 8, rcq::api::extended> sq(std::move(*p.a));
    const rcq::remote_region peer = p.b_memory();
    fill(std::span(p.mem_a).first(8 * 512), 12);
    std::array<ibv_sge, 8> sges;
    rcq::wr_chain<8> chain;
    for (std::size_t i = 0; i < 8; ++i) {
        sges[i] = rcq::local(p.mr_a, i * 512, 512);
        chain.set(i, rcq::write_op(sges[i], peer.slice(i * 512, 512), i));
    }
    ASSERT_EQ(sq.post(chain), 0);
    const ibv_wc done = extended_pair::next(p.cq_a);
    ASSERT_EQ(done.status, IBV_WC_SUCCESS) << ibv_wc_status_str(done.status);
    EXPECT_EQ(done.wr_id, 7u);
    sq.retire();
    EXPECT_EQ(std::memcmp(p.mem_a.data(), p.mem_b.data(), 8 * 512), 0);

    const ibv_sge into = rcq::local(p.mr_a, 10000, 4096);
    rcq::read_op read(into, peer.slice(0, 4096), 20);
    ASSERT_EQ(sq.post(read), 0); // a single post: unsignaled until the 8th, so ask for it
    const ibv_sge add_old = rcq::local(p.mr_a, 20000, 8), swap_old = rcq::local(p.mr_a, 20008, 8);
    const ibv_sge scratch = rcq::local(p.mr_a, 20016, 8);
    rcq::fetch_add_op add(add_old, peer.word(3000), 21, 5);
    rcq::compare_swap_op swap(swap_old, peer.word(3000), 22, 5, 99);
    ASSERT_EQ(sq.post(add), 0);
    ASSERT_EQ(sq.post(swap), 0);
    for (int i = 0; i < 5; ++i) {
        rcq::fetch_add_op nop(scratch, peer.word(3001), 30 + i, 0);
        ASSERT_EQ(sq.post(nop), 0);
    }
    const ibv_wc last = extended_pair::next(p.cq_a); // the 8th single post is signaled
    ASSERT_EQ(last.status, IBV_WC_SUCCESS) << ibv_wc_status_str(last.status);
    EXPECT_EQ(last.wr_id, 34u);
    EXPECT_EQ(std::memcmp(p.mem_a.data(), p.mem_a.data() + 10000, 4096), 0);
    std::uint64_t word = 0, old_add = 1, old_swap = 1;
    std::memcpy(&word, p.mem_b.data() + 3000 * 8, 8);
    std::memcpy(&old_add, p.mem_a.data() + 20000, 8);
    std::memcpy(&old_swap, p.mem_a.data() + 20008, 8);
    EXPECT_EQ(old_add, 0u);
    EXPECT_EQ(old_swap, 5u);
    EXPECT_EQ(word, 99u);
}

TEST(Extended, PollingIntoAnEmptySpanTakesNothing) {
    extended_pair p;
    const ibv_sge from = rcq::local(p.mr_a, 0, 64);
    rcq::send_op w(from, 77);
    ASSERT_EQ(p.a->post_send(w), 0);
    ASSERT_EQ(extended_pair::next(p.cq_b).status, IBV_WC_SUCCESS); // the RECV: the SEND is done
    ibv_wc sentinel{};
    sentinel.wr_id = 0x5e;
    // An empty span that points at the sentinel: nothing may be written there
    // nor taken from the CQ, however long we poll (long enough for the
    // SEND's completion to be there).
    const auto until = rcq::deadline::after(std::chrono::milliseconds(500));
    while (!until.expired()) ASSERT_EQ(p.cq_a.poll(std::span<ibv_wc>(&sentinel, 0)), 0);
    EXPECT_EQ(sentinel.wr_id, 0x5eu);
    EXPECT_EQ(extended_pair::next(p.cq_a).wr_id, 77u); // still in the CQ
}

TEST(Extended, ALegacyQpIsRefusedClearly) {
    rdma_test::qp_pair p;
    p.connect();
    try {
        rcq::send_queue<16, 1, rcq::api::extended> sq(std::move(*p.a));
        FAIL() << "a QP without send_ops was accepted";
    } catch (const rcq::error& e) {
        EXPECT_NE(std::string(e.what()).find("qp_caps::send_ops"), std::string::npos) << e.what();
    }
}

} // namespace
