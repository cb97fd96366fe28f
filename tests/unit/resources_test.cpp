// rcq::resources' options that are refused before any device is opened, and
// the shape of rcq::resources and rcq::peer: no device needed.
#include "support.hpp"

#include <rcq/handshake/file.hpp>
#include <rcq/handshake/tcp.hpp>
#include <rcq/peer.hpp>
#include <rcq/resources.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <type_traits>

namespace {

using ::testing::HasSubstr;
using unit_test::error_of;

static_assert(!std::is_copy_constructible_v<rcq::resources<>> &&
              !std::is_move_constructible_v<rcq::resources<>>,
              "resources stay where their QPs point");
static_assert(std::is_move_constructible_v<rcq::peer<rcq::handshake::tcp>> &&
              std::is_move_assignable_v<rcq::peer<rcq::handshake::tcp>> &&
              !std::is_copy_constructible_v<rcq::peer<rcq::handshake::tcp>> &&
              !std::is_copy_assignable_v<rcq::peer<rcq::handshake::tcp>>,
              "a peer is move-only");
static_assert(rcq::peer<rcq::handshake::tcp>::has_liveness_signal);
static_assert(!rcq::peer<rcq::handshake::file>::has_liveness_signal);

TEST(Resources, ACqTooSmallForMaxQpsIsRefusedBeforeAnythingIsOpened) {
    rcq::resources_options o;
    o.device = "no-such-device"; // never reached
    o.max_qps = 16;
    o.cq_depth = 16 * 128 - 1; // default caps: 64 sends + 64 receives per QP
    EXPECT_THAT(error_of([&] { rcq::resources<> r(o); }, EINVAL),
                HasSubstr("cq_depth 2047 is less than the 2048 completions"));
    o.srq_depth = 100; // sends 16 x 64, plus the SRQ's 100 receives
    o.cq_depth = 1123;
    EXPECT_THAT(error_of([&] { rcq::resources<> r(o); }, EINVAL),
                HasSubstr("cq_depth 1123 is less than the 1124 completions"));
    o.cq_depth = -1;
    EXPECT_THAT(error_of([&] { rcq::resources<> r(o); }, EINVAL), HasSubstr("cq_depth -1"));
}

TEST(Resources, ZeroQpsOrACqBeyondIntAreRefused) {
    rcq::resources_options o;
    o.device = "no-such-device";
    o.max_qps = 0;
    EXPECT_THAT(error_of([&] { rcq::resources<> r(o); }, EINVAL), HasSubstr("max_qps is 0"));
    o.max_qps = 0xffffffffu;
    EXPECT_THAT(error_of([&] { rcq::resources<> r(o); }, EINVAL),
                HasSubstr("would need 549755813760 entries"));
}

TEST(Resources, AnAcceptableCqDepthGoesOnToOpenTheDevice) {
    rcq::resources_options o;
    o.device = "no-such-device";
    o.max_qps = 2;
    o.cq_depth = 256; // exactly enough
    try {
        rcq::resources<> r(o);
        FAIL() << "a device named no-such-device was opened";
    } catch (const rcq::error& e) {
        EXPECT_THAT(e.what(), ::testing::Not(HasSubstr("cq_depth")));
    }
}

} // namespace
