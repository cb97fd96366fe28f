// The guarantees rcq states that need no device: remote bounds checked when a
// request is built, word indices that cannot wrap, release failures that are
// never silent, transitions on an empty handle, connection settings refused
// before anything is opened, and a peer's length that is not trusted.
#include "../../examples/example_options.hpp"

#include <rcq/rcq.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <system_error>

namespace {

using testing::HasSubstr;

const rcq::remote_region peer(0x10000, 0x1234, 4096);

template <class F>
rcq::error thrown(F f) {
    try {
        f();
    } catch (const rcq::error& e) {
        return e;
    }
    ADD_FAILURE() << "nothing was thrown";
    return rcq::error(std::error_code(), "nothing");
}

TEST(RemoteBounds, AWriteLongerThanItsSliceIsRefused) {
    const ibv_sge sge{0x2000, 4096, 7};
    const rcq::error e = thrown([&] { rcq::write_op w(sge, peer.slice(peer.length() - 8, 8), 1); });
    EXPECT_EQ(e.code(), std::errc::result_out_of_range);
    EXPECT_THAT(e.what(), HasSubstr("RDMA WRITE of 4096 bytes into a remote slice of 8 bytes"));
    EXPECT_THAT(e.what(), HasSubstr("peer.slice(offset, sge.length)"));
}

TEST(RemoteBounds, AReadAndAWriteWithImmediateLongerThanTheirSliceAreRefused) {
    const ibv_sge sge{0x2000, 16, 7};
    EXPECT_EQ(thrown([&] { rcq::read_op r(sge, peer.slice(0, 15), 1); }).code(),
              std::errc::result_out_of_range);
    EXPECT_EQ(thrown([&] { rcq::write_imm_op w(sge, peer.slice(4088, 8), 1, 5); }).code(),
              std::errc::result_out_of_range);
}

TEST(RemoteBounds, RequestsThatFitTheirSliceAreBuiltAsVerbsWantThem) {
    const ibv_sge sge{0x2000, 8, 7};
    rcq::write_op w(sge, peer.slice(4088, 8), 3);
    EXPECT_EQ(w.wr.rdma.remote_addr, 0x10000u + 4088);
    EXPECT_EQ(w.wr.rdma.rkey, 0x1234u);
    EXPECT_EQ(w.length(), 8u);
    rcq::read_op r(sge, peer.slice(0, 4096), 4); // shorter than the slice: fine
    EXPECT_EQ(r.wr.rdma.remote_addr, 0x10000u);
}

TEST(RemoteBounds, AWordIndexThatWouldWrapIsRefused) {
    const rcq::error e = thrown([&] { (void)peer.word((1ull << 61) + 3); });
    EXPECT_EQ(e.code(), std::errc::result_out_of_range);
    EXPECT_THAT(e.what(), HasSubstr("outside the peer's 4096-byte region (512 words)"));
    EXPECT_EQ(thrown([&] { (void)peer.word(512); }).code(), std::errc::result_out_of_range);
    EXPECT_EQ(peer.word(511).addr, 0x10000u + 511 * 8);
    EXPECT_EQ(peer.word<std::int64_t>(0).addr, 0x10000u);
}

TEST(RemoteBounds, ASliceOutsideTheRegionIsRefused) {
    EXPECT_EQ(thrown([&] { (void)peer.slice(4096, 1); }).code(), std::errc::result_out_of_range);
    EXPECT_EQ(thrown([&] { (void)peer.slice(~0ull, 2); }).code(), std::errc::result_out_of_range);
}

// A release verb that fails as verbs does when a dependent object is alive.
int busy_release(int*) { return EBUSY; }

TEST(Owners, AFailedReleaseIsReportedNotIgnored) {
#if RCQ_DEBUG_CHECKS
    GTEST_SKIP() << "with RCQ_DEBUG_CHECKS on it aborts instead (rcq_debug_checks_tests)";
#else
    int object = 0;
    testing::internal::CaptureStderr();
    {
        rcq::detail::handle<int, &busy_release> h(&object);
    }
    const std::string said = testing::internal::GetCapturedStderr();
    EXPECT_THAT(said, HasSubstr("failed: Device or resource busy"));
    EXPECT_THAT(said, HasSubstr("leaks"));
    EXPECT_THAT(said, HasSubstr("destroy those first"));
#endif
}

TEST(Owners, TheVerbIsNamedInTheReport) {
    EXPECT_STREQ(rcq::detail::release_verb<ibv_cq>(), "ibv_destroy_cq");
    EXPECT_STREQ(rcq::detail::release_verb<ibv_pd>(), "ibv_dealloc_pd");
    EXPECT_STREQ(rcq::detail::release_verb<ibv_qp>(), "ibv_destroy_qp");
}

TEST(Owners, TemporariesDoNotConvertToRawPointers) {
    static_assert(std::is_convertible_v<rcq::pd&, ibv_pd*>);
    static_assert(!std::is_convertible_v<rcq::pd&&, ibv_pd*>);
    static_assert(!std::is_convertible_v<rcq::cq&&, ibv_cq*>);
    static_assert(!std::is_convertible_v<rcq::context&&, ibv_context*>);
    static_assert(!std::is_convertible_v<rcq::srq&&, ibv_srq*>);
    static_assert(!std::is_constructible_v<rcq::qp<rcq::state::reset>, ibv_pd*, rcq::cq&&>);
    static_assert(std::is_constructible_v<rcq::qp<rcq::state::reset>, ibv_pd*, rcq::cq&>);
    static_assert(!std::is_copy_constructible_v<rcq::send_queue<16>>);
    static_assert(std::is_move_constructible_v<rcq::send_queue<16>>);
    SUCCEED();
}

TEST(Handles, ATransitionOnAnEmptyHandleIsRefused) {
    auto q = rcq::qp<rcq::state::reset>::adopt_unchecked(nullptr); // what a move leaves behind
    const rcq::error e = thrown([&] { (void)std::move(q).to_init(); });
    EXPECT_EQ(e.code(), std::errc::invalid_argument);
    EXPECT_THAT(e.what(), HasSubstr("RESET->INIT on an empty handle"));
    EXPECT_THAT(e.what(), HasSubstr("use the handle the transition returned"));
}

TEST(Connection, ACqThatCouldOverrunIsRefusedBeforeAnythingIsOpened) {
    rcq::connection_options o;
    o.device = "no-such-device"; // never reached: the check comes first
    o.caps.max_send_wr = 100;
    o.caps.max_recv_wr = 100;
    o.cq_depth = 128;
    const rcq::error e = thrown([&] {
        rcq::connection<> c(rcq::handshake::tcp::client("127.0.0.1", 9), o);
    });
    EXPECT_EQ(e.code(), std::errc::invalid_argument);
    EXPECT_THAT(e.what(), HasSubstr("cq_depth 128 is less than caps.max_send_wr + caps.max_recv_wr (200)"));
    EXPECT_THAT(e.what(), HasSubstr("set cq_depth >= 200"));
}

TEST(Examples, APeersLengthIsNotTrusted) {
    EXPECT_EQ(example::length_from_peer("done 4096", "done ", 65536), 4096u);
    EXPECT_EQ(thrown([] { example::length_from_peer("done 999999", "done ", 65536); }).code(),
              std::errc::result_out_of_range);
    EXPECT_EQ(thrown([] { example::length_from_peer("done -1", "done ", 65536); }).code(),
              std::errc::protocol_error);
    EXPECT_EQ(thrown([] { example::length_from_peer("done 12x", "done ", 65536); }).code(),
              std::errc::protocol_error);
    EXPECT_EQ(thrown([] { example::length_from_peer("done ", "done ", 65536); }).code(),
              std::errc::protocol_error);
    EXPECT_EQ(thrown([] { example::length_from_peer("hello", "done ", 65536); }).code(),
              std::errc::protocol_error);
}

} // namespace
