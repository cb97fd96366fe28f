// Every RC operation rcq builds, on a real device, with every byte checked:
// SEND (with immediate), RDMA WRITE (with immediate), READ, the two atomics,
// inline sends, chains posted with one doorbell, selective signaling, a
// shared receive queue, and the error completions users must be able to see.
#include "qp_pair.hpp"

#include <rcq/rcq.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <cstring>
#include <set>

namespace {

using rdma_test::fill;
using rdma_test::qp_pair;
using testing::HasSubstr;

std::span<std::byte> at(rdma_test::side& s, std::size_t off, std::size_t len) {
    return std::span(s.memory).subspan(off, len);
}

TEST(Ops, SendWithImmediate) {
    qp_pair p;
    const ibv_sge into = rcq::local(p.b_side.region, 0, 1000);
    p.connect([&](auto&, auto& b) {
        rcq::recv_wr r(into, 5);
        ASSERT_EQ(b.post_recv(r), 0);
    });
    fill(at(p.a_side, 0, 1000), 1);
    const ibv_sge from = rcq::local(p.a_side.region, 0, 1000);
    rcq::send_imm_op w(from, 6, 0xC0FFEE);
    ASSERT_EQ(p.a->post_send(w), 0);
    const ibv_wc got = qp_pair::next(p.b_side.recv);
    ASSERT_EQ(got.status, IBV_WC_SUCCESS) << ibv_wc_status_str(got.status);
    EXPECT_EQ(got.opcode, IBV_WC_RECV);
    EXPECT_TRUE(got.wc_flags & IBV_WC_WITH_IMM);
    EXPECT_EQ(ntohl(got.imm_data), 0xC0FFEEu);
    EXPECT_EQ(got.byte_len, 1000u);
    EXPECT_EQ(qp_pair::next(p.a_side.send).status, IBV_WC_SUCCESS);
    EXPECT_EQ(std::memcmp(p.a_side.memory.data(), p.b_side.memory.data(), 1000), 0);
}

TEST(Ops, WriteThenReadBack) {
    qp_pair p;
    p.connect();
    const rcq::remote_region peer = p.b_memory();
    fill(at(p.a_side, 0, 8192), 2);
    const ibv_sge from = rcq::local(p.a_side.region, 0, 8192);
    rcq::write_op write(from, peer.slice(4096, 8192), 1);
    ASSERT_EQ(p.a->post_send(write), 0);
    ASSERT_EQ(qp_pair::next(p.a_side.send).status, IBV_WC_SUCCESS);
    EXPECT_EQ(std::memcmp(p.a_side.memory.data(), p.b_side.memory.data() + 4096, 8192), 0);

    // Read it back into another part of A's memory.
    const ibv_sge into = rcq::local(p.a_side.region, 20000, 8192);
    rcq::read_op read(into, peer.slice(4096, 8192), 2);
    ASSERT_EQ(p.a->post_send(read), 0);
    const ibv_wc done = qp_pair::next(p.a_side.send);
    ASSERT_EQ(done.status, IBV_WC_SUCCESS) << ibv_wc_status_str(done.status);
    EXPECT_EQ(done.opcode, IBV_WC_RDMA_READ);
    EXPECT_EQ(std::memcmp(p.a_side.memory.data(), p.a_side.memory.data() + 20000, 8192), 0);
}

TEST(Ops, WriteWithImmediateConsumesAReceive) {
    qp_pair p;
    const ibv_sge none = rcq::local(p.b_side.region, 0, 0);
    p.connect([&](auto&, auto& b) {
        rcq::recv_wr r(none, 9);
        ASSERT_EQ(b.post_recv(r), 0);
    });
    fill(at(p.a_side, 0, 512), 3);
    const ibv_sge from = rcq::local(p.a_side.region, 0, 512);
    rcq::write_imm_op w(from, p.b_memory().slice(100, 512), 1, 77);
    ASSERT_EQ(p.a->post_send(w), 0);
    const ibv_wc got = qp_pair::next(p.b_side.recv);
    ASSERT_EQ(got.status, IBV_WC_SUCCESS) << ibv_wc_status_str(got.status);
    EXPECT_EQ(got.opcode, IBV_WC_RECV_RDMA_WITH_IMM);
    EXPECT_EQ(ntohl(got.imm_data), 77u);
    EXPECT_EQ(got.wr_id, 9u);
    EXPECT_EQ(std::memcmp(p.a_side.memory.data(), p.b_side.memory.data() + 100, 512), 0);
}

TEST(Ops, AtomicsOnARemoteWord) {
    qp_pair p;
    p.connect();
    std::uint64_t start = 40;
    std::memcpy(p.b_side.memory.data() + 64, &start, 8);
    const rcq::remote_word word = p.b_memory().word<std::uint64_t>(8); // byte 64
    const ibv_sge old = rcq::local(p.a_side.region, 0, 8);

    rcq::fetch_add_op add(old, word, 1, 2);
    ASSERT_EQ(p.a->post_send(add), 0);
    ASSERT_EQ(qp_pair::next(p.a_side.send).status, IBV_WC_SUCCESS);
    std::uint64_t seen = 0, now = 0;
    std::memcpy(&seen, p.a_side.memory.data(), 8);
    std::memcpy(&now, p.b_side.memory.data() + 64, 8);
    EXPECT_EQ(seen, 40u);
    EXPECT_EQ(now, 42u);

    rcq::compare_swap_op swap(old, word, 2, 42, 1000);
    ASSERT_EQ(p.a->post_send(swap), 0);
    ASSERT_EQ(qp_pair::next(p.a_side.send).status, IBV_WC_SUCCESS);
    std::memcpy(&seen, p.a_side.memory.data(), 8);
    std::memcpy(&now, p.b_side.memory.data() + 64, 8);
    EXPECT_EQ(seen, 42u);
    EXPECT_EQ(now, 1000u);

    rcq::compare_swap_op miss(old, word, 3, 42, 5); // 1000 != 42: no swap
    ASSERT_EQ(p.a->post_send(miss), 0);
    ASSERT_EQ(qp_pair::next(p.a_side.send).status, IBV_WC_SUCCESS);
    std::memcpy(&now, p.b_side.memory.data() + 64, 8);
    EXPECT_EQ(now, 1000u);
}

TEST(Ops, RemoteAccessOutsideTheRegionIsRefusedBeforePosting) {
    qp_pair p;
    const rcq::remote_region peer = p.b_memory();
    try {
        (void)peer.slice(peer.length() - 10, 11);
        FAIL() << "a slice past the end was accepted";
    } catch (const rcq::error& e) {
        EXPECT_EQ(e.code(), std::errc::result_out_of_range);
        EXPECT_THAT(e.what(), HasSubstr("reaches outside the peer's"));
    }
    EXPECT_THROW((void)peer.word(peer.length() / 8), rcq::error);
    const rcq::remote_region skewed(peer.addr() + 4, peer.rkey(), 64);
    try {
        (void)skewed.word(0);
        FAIL() << "a misaligned atomic word was accepted";
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.what(), HasSubstr("not 8-byte aligned"));
    }
    rcq::endpoint no_token{};
    EXPECT_THROW((void)rcq::remote_region::of(no_token), rcq::error);
}

TEST(Ops, InlineSendAndItsLimit) {
    qp_pair p;
    const ibv_sge into = rcq::local(p.b_side.region, 0, 64);
    p.connect([&](auto&, auto& b) {
        rcq::recv_wr r(into, 1);
        ASSERT_EQ(b.post_recv(r), 0);
    });
    rcq::send_queue<64, 1> sq(std::move(*p.a));
    ASSERT_GE(sq.max_inline(), 64u);
    // Inline: the data is copied at post time, so the source may change at once.
    std::vector<std::byte> scratch(64);
    fill(scratch, 4);
    const std::vector<std::byte> sent = scratch;
    const ibv_sge from{reinterpret_cast<std::uintptr_t>(scratch.data()), 64, 0};
    rcq::send_op w(from, 2);
    w.inlined();
    ASSERT_EQ(sq.post(w), 0);
    std::fill(scratch.begin(), scratch.end(), std::byte{0});
    ASSERT_EQ(qp_pair::next(p.b_side.recv).status, IBV_WC_SUCCESS);
    EXPECT_EQ(std::memcmp(sent.data(), p.b_side.memory.data(), 64), 0);

    std::vector<std::byte> big(sq.max_inline() + 1);
    const ibv_sge too_long{reinterpret_cast<std::uintptr_t>(big.data()),
                           static_cast<std::uint32_t>(big.size()), 0};
    rcq::send_op w2(too_long, 3);
    w2.inlined();
    EXPECT_EQ(sq.post(w2), EMSGSIZE);
}

TEST(Ops, ChainOfSixteenWritesWithOneDoorbellAndSelectiveSignaling) {
    qp_pair p;
    p.connect();
    const rcq::remote_region peer = p.b_memory();
    fill(at(p.a_side, 0, 16 * 1024), 5);
    rcq::send_queue<64, 16> sq(std::move(*p.a));
    std::array<ibv_sge, 16> sges;
    rcq::wr_chain<16> chain;
    for (std::size_t i = 0; i < 16; ++i) {
        sges[i] = rcq::local(p.a_side.region, i * 1024, 1024);
        chain.set(i, rcq::write_op(sges[i], peer.slice(32768 + i * 1024, 1024), i));
    }
    int signaled = 0;
    for (int round = 0; round < 8; ++round) {
        ASSERT_EQ(sq.post(chain), 0);
        const ibv_wc wc = qp_pair::next(p.a_side.send);
        ASSERT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
        EXPECT_EQ(wc.wr_id, 15u); // only the chain's last request is signaled
        sq.retire();
        ++signaled;
    }
    EXPECT_EQ(sq.outstanding(), 0u);
    EXPECT_EQ(signaled, 8);
    // Nothing else completed: the other 15 of each chain were unsignaled.
    ibv_wc extra{};
    EXPECT_EQ(p.a_side.send.poll({&extra, 1}), 0);
    EXPECT_EQ(std::memcmp(p.a_side.memory.data(), p.b_side.memory.data() + 32768, 16 * 1024), 0);
}

TEST(Ops, SelectiveSignalingNeverOverflowsTheQueue) {
    qp_pair p;
    const ibv_sge into = rcq::local(p.b_side.region, 0, 8);
    p.connect([&](auto&, auto& b) {
        for (int i = 0; i < 100; ++i) {
            rcq::recv_wr r(into, i);
            ASSERT_EQ(b.post_recv(r), 0);
        }
    });
    rcq::send_queue<8, 4> sq(std::move(*p.a));
    const ibv_sge from = rcq::local(p.a_side.region, 0, 8);
    int posted = 0, refused = 0;
    while (posted < 100) {
        rcq::send_op w(from, posted);
        const int rc = sq.post(w);
        if (rc == ENOSPC) {
            ++refused;
            ASSERT_EQ(qp_pair::next(p.a_side.send).status, IBV_WC_SUCCESS);
            sq.retire();
            continue;
        }
        ASSERT_EQ(rc, 0);
        ASSERT_LE(sq.outstanding(), 8u);
        ++posted;
    }
    EXPECT_GT(refused, 0);
    for (int i = 0; i < 100; ++i) ASSERT_EQ(qp_pair::next(p.b_side.recv).status, IBV_WC_SUCCESS);
}

TEST(Ops, SharedReceiveQueueServesTwoQps) {
    qp_pair p;
    rcq::srq shared(p.pd, 64);
    rcq::qp_caps caps = qp_pair::default_caps();
    caps.srq = shared;
    rcq::cq rx(p.ctx, 64);
    std::vector<std::byte> pool(4096);
    rcq::mr pool_mr(p.pd, pool);
    // Two receivers on the SRQ, both fed by QP A and a third sender QP.
    rcq::qp<rcq::state::reset> r1(p.pd, rx, caps), r2(p.pd, rx, caps);
    std::array<ibv_sge, 4> sges;
    for (int i = 0; i < 4; ++i) {
        sges[i] = rcq::local(pool_mr, i * 1024, 1024);
        rcq::recv_wr r(sges[i], 100 + i);
        ASSERT_EQ(shared.post_recv(r), 0);
    }
    rcq::cq tx(p.ctx, 64);
    auto s1 = rcq::qp<rcq::state::reset>(p.pd, tx, qp_pair::default_caps()).to_init();
    auto s2 = rcq::qp<rcq::state::reset>(p.pd, tx, qp_pair::default_caps()).to_init();
    auto i1 = std::move(r1).to_init();
    auto i2 = std::move(r2).to_init();
    const auto q1 = i1.qp_num(), q2 = i2.qp_num(), t1 = s1.qp_num(), t2 = s2.qp_num();
    auto recv1 = std::move(i1).to_rtr(p.towards(t1, 1)).to_rts({.sq_psn = 1});
    auto recv2 = std::move(i2).to_rtr(p.towards(t2, 1)).to_rts({.sq_psn = 1});
    auto send1 = std::move(s1).to_rtr(p.towards(q1, 1)).to_rts({.sq_psn = 1});
    auto send2 = std::move(s2).to_rtr(p.towards(q2, 1)).to_rts({.sq_psn = 1});

    fill(at(p.a_side, 0, 100), 6);
    const ibv_sge msg = rcq::local(p.a_side.region, 0, 100);
    rcq::send_op w1(msg, 1), w2(msg, 2);
    ASSERT_EQ(send1.post_send(w1), 0);
    ASSERT_EQ(send2.post_send(w2), 0);
    std::set<std::uint32_t> from_qps;
    for (int i = 0; i < 2; ++i) {
        const ibv_wc wc = qp_pair::next(rx);
        ASSERT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
        EXPECT_GE(wc.wr_id, 100u);
        from_qps.insert(wc.qp_num);
        EXPECT_EQ(std::memcmp(pool.data() + (wc.wr_id - 100) * 1024, p.a_side.memory.data(), 100), 0);
    }
    EXPECT_EQ(from_qps, (std::set<std::uint32_t>{recv1.qp_num(), recv2.qp_num()}));
}

// -- errors surface as error completions, within a deadline ----------------

TEST(OpsErrors, AWrongRkeyGivesARemoteAccessError) {
    qp_pair p;
    p.connect();
    const rcq::remote_region real = p.b_memory();
    const rcq::remote_region forged(real.addr(), real.rkey() ^ 0x5a5a00, real.length());
    const ibv_sge from = rcq::local(p.a_side.region, 0, 64);
    rcq::write_op w(from, forged.slice(0, 64), 1);
    ASSERT_EQ(p.a->post_send(w), 0);
    const ibv_wc wc = qp_pair::next(p.a_side.send);
    EXPECT_EQ(wc.status, IBV_WC_REM_ACCESS_ERR) << ibv_wc_status_str(wc.status);
    try {
        rcq::check_completion(wc, "RDMA WRITE with a forged rkey");
        FAIL();
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.what(), HasSubstr("remote access error"));
        EXPECT_THAT(e.what(), HasSubstr("rkey"));
    }
}

TEST(OpsErrors, ASendWithNoReceivePostedGivesAnRnrError) {
    qp_pair p;
    p.connect([](auto&, auto&) {}, {.rnr_retry = 1});
    const ibv_sge from = rcq::local(p.a_side.region, 0, 64);
    rcq::send_op w(from, 1);
    ASSERT_EQ(p.a->post_send(w), 0);
    const ibv_wc wc = qp_pair::next(p.a_side.send, std::chrono::seconds(10));
    EXPECT_EQ(wc.status, IBV_WC_RNR_RETRY_EXC_ERR) << ibv_wc_status_str(wc.status);
}

TEST(OpsErrors, APeerThatDiesGivesRetryExceededNotAHang) {
    qp_pair p;
    // A short ACK timeout (4.096 us * 2^12 = 17 ms) and few retries keep it quick.
    p.connect([](auto&, auto&) {}, {.timeout = 12, .retry_cnt = 2});
    auto dead = std::move(*p.b).to_error(); // the peer stops answering
    (void)dead;
    p.b.reset();
    const ibv_sge from = rcq::local(p.a_side.region, 0, 4096);
    rcq::write_op w(from, p.b_memory().slice(0, 4096), 1);
    ASSERT_EQ(p.a->post_send(w), 0);
    const ibv_wc wc = qp_pair::next(p.a_side.send, std::chrono::seconds(20));
    EXPECT_EQ(wc.status, IBV_WC_RETRY_EXC_ERR) << ibv_wc_status_str(wc.status);
}

} // namespace
