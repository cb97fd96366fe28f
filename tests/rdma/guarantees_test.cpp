// Guarantees that need a device: send_queue's accounting when the provider
// takes only part of a chain, its refusal of signal_all with Every > 1, its
// ownership of the QP, the hints of the completions that point at buffer
// bounds, destroy failures that are reported, and QPNs in hex.
#include "qp_pair.hpp"

#include <rcq/rcq.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <optional>
#include <string>

namespace {

using rdma_test::qp_pair;
using testing::HasSubstr;

TEST(Guarantees, APartlyPostedChainIsCountedUpToTheFirstRequestNotPosted) {
    qp_pair p;
    p.connect();
    const rcq::remote_region peer = p.b_memory();
    rcq::send_queue<64, 16> sq(std::move(*p.a));
    std::array<ibv_sge, 4> sges;
    rcq::wr_chain<4> chain;
    for (std::size_t i = 0; i < 4; ++i) {
        sges[i] = rcq::local(p.a_side.region, i * 1024, 1024);
        chain.set(i, rcq::write_op(sges[i], peer.slice(i * 1024, 1024), i));
    }
    chain[2].send_flags |= IBV_SEND_INLINE; // 1024 bytes inline: more than the QP takes
    EXPECT_EQ(sq.post(chain), EMSGSIZE);
    // The provider posted the two requests before the refused one.
    EXPECT_EQ(sq.outstanding(), 2u);

    // The count is exact: 14 more make 16, the 16th is signaled and its
    // completion retires all of them.
    const ibv_sge one = rcq::local(p.a_side.region, 0, 8);
    for (int i = 0; i < 14; ++i) {
        rcq::write_op w(one, peer.slice(8192, 8), 100 + i);
        bool signaled = false;
        ASSERT_EQ(sq.post(w, signaled), 0);
        EXPECT_EQ(signaled, i == 13);
    }
    const ibv_wc wc = qp_pair::next(p.a_side.send);
    ASSERT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
    EXPECT_EQ(wc.wr_id, 113u);
    sq.retire();
    EXPECT_EQ(sq.outstanding(), 0u);
}

TEST(Guarantees, SignalAllWithEveryAboveOneIsRefusedAndTheQpStaysWithTheCaller) {
    rcq::qp_caps caps = qp_pair::default_caps();
    caps.signal_all = true;
    qp_pair p(1 << 16, caps);
    p.connect();
    try {
        rcq::send_queue<64, 16> sq(std::move(*p.a));
        FAIL() << "signal_all with Every = 16 was accepted";
    } catch (const rcq::error& e) {
        EXPECT_EQ(e.code(), std::errc::invalid_argument);
        EXPECT_THAT(e.what(), HasSubstr("qp_caps::signal_all"));
        EXPECT_THAT(e.what(), HasSubstr("send_queue<Depth, 1>"));
    }
    ASSERT_NE(p.a->get(), nullptr); // NOLINT(bugprone-use-after-move): a refused queue leaves it
    rcq::send_queue<64, 1> every_one(std::move(*p.a));
    EXPECT_EQ(every_one.outstanding(), 0u);
}

TEST(Guarantees, TheSendQueueOwnsItsQpUntilItGivesItBack) {
    qp_pair p;
    p.connect();
    const std::uint32_t qpn = p.a->qp_num();
    rcq::send_queue<64, 1> sq(std::move(*p.a));
    EXPECT_EQ(sq.queue_pair().qp_num(), qpn);
    rcq::qp<rcq::state::error> failed = std::move(sq).to_error();
    EXPECT_EQ(failed.qp_num(), qpn);
    ibv_qp_attr attr{};
    ibv_qp_init_attr init{};
    ASSERT_EQ(ibv_query_qp(failed.get(), &attr, IBV_QP_STATE, &init), 0);
    EXPECT_EQ(attr.qp_state, IBV_QPS_ERR);
}

TEST(Guarantees, ASendPastItsOwnRegionCompletesWithAHintAboutBounds) {
    qp_pair p;
    const ibv_sge into = rcq::local(p.b_side.region, 0, 4096);
    p.connect([&](auto&, auto& b) {
        rcq::recv_wr r(into, 1);
        ASSERT_EQ(b.post_recv(r), 0);
    });
    const std::size_t size = p.a_side.memory.size();
    // 56 bytes past the MR, made by hand (rcq::local checks bounds in debug builds).
    const ibv_sge past{reinterpret_cast<std::uintptr_t>(p.a_side.memory.data() + size - 8), 64,
                       p.a_side.region.lkey()};
    rcq::send_op w(past, 7);
    ASSERT_EQ(p.a->post_send(w), 0);
    const ibv_wc wc = qp_pair::next(p.a_side.send);
    EXPECT_EQ(wc.status, IBV_WC_LOC_PROT_ERR) << ibv_wc_status_str(wc.status);
    try {
        rcq::check_completion(wc, "the SEND");
        FAIL() << "a failed completion passed";
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.what(), HasSubstr("reaches outside its memory region"));
    }
}

TEST(Guarantees, AWritePastThePeersRegionCompletesWithAHintAboutBounds) {
    qp_pair p;
    p.connect();
    const rcq::remote_region peer = p.b_memory();
    const ibv_sge from = rcq::local(p.a_side.region, 0, 8);
    // A slice made by hand, past the end of what the peer registered.
    const rcq::remote_slice beyond{peer.addr() + peer.length(), peer.rkey(), 8};
    rcq::write_op w(from, beyond, 3);
    ASSERT_EQ(p.a->post_send(w), 0);
    const ibv_wc wc = qp_pair::next(p.a_side.send);
    EXPECT_EQ(wc.status, IBV_WC_REM_ACCESS_ERR) << ibv_wc_status_str(wc.status);
    try {
        rcq::check_completion(wc, "the WRITE");
        FAIL() << "a failed completion passed";
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.what(), HasSubstr("outside the peer's registered memory"));
    }
}

TEST(Guarantees, DestroyingACqAQpStillUsesIsReported) {
#if RCQ_DEBUG_CHECKS
    GTEST_SKIP() << "with RCQ_DEBUG_CHECKS on, a failed destroy aborts";
#else
    rcq::context ctx = rcq::context::open(rdma_test::device_name());
    rcq::pd pd(ctx);
    std::optional<rcq::cq> cq(std::in_place, ctx, 16);
    rcq::qp<rcq::state::reset> q(pd, *cq);
    testing::internal::CaptureStderr();
    cq.reset(); // wrong order: the QP still uses it; verbs refuses (EBUSY)
    const std::string said = testing::internal::GetCapturedStderr();
    EXPECT_THAT(said, HasSubstr("ibv_destroy_cq failed: Device or resource busy"));
    EXPECT_THAT(said, HasSubstr("leaks"));
#endif
}

TEST(Guarantees, QpnsAreHexInErrors) {
    rcq::context ctx = rcq::context::open(rdma_test::device_name());
    rcq::pd pd(ctx);
    rcq::cq cq(ctx, 16);
    rcq::qp<rcq::state::reset> q(pd, cq);
    const std::string qpn = "QPN 0x" + rcq::detail::hex(q.qp_num());
    try {
        auto next = std::move(q).to_init({.port_num = 9});
        FAIL() << "port 9 was accepted";
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.what(), HasSubstr(qpn));
    }
}

} // namespace
