// The extremes of what a user passes: every duration and size of
// connection_options and of the handshakes' constructors at 0, negative,
// huge and out of range. Each ends in a clear error (or, for "no time
// limit", a saturated deadline), never undefined behaviour or a hang. The
// connection's option checks come before any device is opened, so they run
// here without one; what depends on the device is in tests/rdma.
#include "support.hpp"

#include <rcq/buffer/owned.hpp>
#include <rcq/connection.hpp>
#include <rcq/handshake/env.hpp>
#include <rcq/handshake/file.hpp>
#include <rcq/handshake/rdma_cm.hpp>
#include <rcq/handshake/tcp.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using unit_test::endpoint_with;
using unit_test::error_of;
using ms = std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

// Builds a connection with `opts`; the options are refused before the
// handshake (a client to a port nobody listens on) or any device is used.
std::string refused(const rcq::connection_options& opts) {
    return error_of([&] { rcq::connection<> c(rcq::handshake::tcp::client("127.0.0.1", 1, 1s), opts); },
                    EINVAL);
}

struct option_case {
    const char* what;
    std::function<void(rcq::connection_options&)> set;
    const char* message;
};

TEST(Extremes, ConnectionOptionsOutOfRangeAreRefusedBeforeAnythingOpens) {
    const std::vector<option_case> cases = {
        {"port 0", [](auto& o) { o.port = 0; }, "connection_options::port 0 is not a port"},
        {"gid_index -1", [](auto& o) { o.gid_index = -1; }, "gid_index -1 is out of range"},
        {"gid_index INT_MIN", [](auto& o) { o.gid_index = INT_MIN; }, "is out of range"},
        {"gid_index 256", [](auto& o) { o.gid_index = 256; }, "gid_index 256 is out of range"},
        {"gid_index INT_MAX", [](auto& o) { o.gid_index = INT_MAX; }, "sgid_index is 8 bits"},
        {"max_mtu 0", [](auto& o) { o.max_mtu = 0; }, "max_mtu 0 is not a path MTU"},
        {"max_mtu -1", [](auto& o) { o.max_mtu = -1; }, "max_mtu -1 is not a path MTU"},
        {"max_mtu 9000", [](auto& o) { o.max_mtu = 9000; }, "max_mtu 9000 is not a path MTU"},
        {"max_mtu INT_MIN", [](auto& o) { o.max_mtu = INT_MIN; }, "is not a path MTU"},
        {"initiator_depth -1", [](auto& o) { o.initiator_depth = -1; }, "initiator_depth -1 is out of range"},
        {"initiator_depth 256", [](auto& o) { o.initiator_depth = 256; }, "initiator_depth 256 is out of range"},
        {"responder_resources INT_MIN", [](auto& o) { o.responder_resources = INT_MIN; },
         "responder_resources -2147483648 is out of range"},
        {"service_level 16", [](auto& o) { o.service_level = 16; }, "service_level 16 is out of range"},
        {"service_level 255", [](auto& o) { o.service_level = 255; }, "service_level 255 is out of range"},
        {"retry_cnt 8", [](auto& o) { o.retry_cnt = 8; }, "retry_cnt 8 / rnr_retry 6: out of range"},
        {"rnr_retry 255", [](auto& o) { o.rnr_retry = 255; }, "3-bit counts, 0 to 7"},
        {"remote_access with other bits", [](auto& o) { o.remote_access = ~0u; },
         "remote_access 0xffffffff has bits other than"},
        {"remote_access with local write", [](auto& o) { o.remote_access = IBV_ACCESS_LOCAL_WRITE; },
         "has bits other than"},
        {"completion_timeout 0", [](auto& o) { o.completion_timeout = ms::zero(); },
         "completion_timeout 0 ms: it must be positive"},
        {"completion_timeout -1", [](auto& o) { o.completion_timeout = ms{-1}; }, "must be positive"},
        {"completion_timeout min", [](auto& o) { o.completion_timeout = ms::min(); },
         "for no time limit, give std::chrono::milliseconds::max()"},
        {"cq_depth 0", [](auto& o) { o.cq_depth = 0; }, "cq_depth 0 is less than"},
        {"cq_depth INT_MIN", [](auto& o) { o.cq_depth = INT_MIN; }, "is less than"},
        {"caps huge", [](auto& o) {
             o.caps.max_send_wr = UINT32_MAX;
             o.caps.max_recv_wr = UINT32_MAX;
             o.cq_depth = INT_MAX;
         },
         "cq_depth 2147483647 is less than caps.max_send_wr + caps.max_recv_wr (8589934590)"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        rcq::connection_options opts;
        c.set(opts);
        EXPECT_THAT(refused(opts), HasSubstr(c.message));
    }
}

TEST(Extremes, AnOwnedBufferTooLargeForAnyAddressSpaceIsRefused) {
    using run_time = rcq::buffer::owned<rcq::buffer::run_time_size>;
    // Rounded up to pages, these sizes used to wrap around to a length of 0.
    for (std::size_t bytes : {SIZE_MAX, SIZE_MAX - 100, (std::size_t{1} << 47) + 1}) {
        SCOPED_TRACE(bytes);
        for (bool huge : {false, true}) {
            EXPECT_THAT(error_of([&] { run_time b(nullptr, {.bytes = bytes, .huge_pages = huge}); }, ENOMEM),
                        HasSubstr("bytes is larger than any address space a process has"));
        }
    }
    EXPECT_THAT(error_of([] { run_time b(nullptr, {.bytes = 0}); }, EINVAL), HasSubstr("config.bytes is 0"));
}

TEST(Extremes, TcpClientToPort0IsRefusedAtOnce) {
    auto start = clock_type::now();
    EXPECT_THAT(error_of([] { rcq::handshake::tcp::client("127.0.0.1", 0, ms::max()); }, EINVAL),
                HasSubstr("tcp client: port 0 is not a port a server can listen on"));
    EXPECT_LT(clock_type::now() - start, 1s);
    // The largest port is a port: a client to it is made (and fails only to connect).
    auto client = rcq::handshake::tcp::client("127.0.0.1", 65535, 300ms);
    EXPECT_THAT(error_of([&] { client.exchange(endpoint_with(1)); }, ETIMEDOUT),
                HasSubstr("could not connect to 127.0.0.1:65535 within 300 ms"));
}

TEST(Extremes, RdmaCmTimeoutsAndPortsAreCheckedBeforeAnythingOpens) {
    using rcq::handshake::rdma_cm;
    for (auto t : {ms::zero(), ms{-1}, ms::min()}) {
        EXPECT_THAT(error_of([&] { rdma_cm::client("10.0.0.1", 7174, t); }, EINVAL),
                    HasSubstr("rdma_cm client: the timeout must be positive"));
        EXPECT_THAT(error_of([&] { rdma_cm::server(0, t); }, EINVAL),
                    HasSubstr("for no time limit, give std::chrono::milliseconds::max()"));
    }
    EXPECT_THAT(error_of([] { rdma_cm::client("10.0.0.1", 0); }, EINVAL),
                HasSubstr("rdma_cm client: port 0 is not a port a server can listen on"));
}

class FileExtremes : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (std::filesystem::temp_directory_path() / "rcq-extremes-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir = pattern;
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    std::filesystem::path dir;
};

TEST_F(FileExtremes, PollIntervalsAndTimeouts) {
    using rcq::handshake::file;
    for (auto t : {ms::zero(), ms{-1}, ms::min()}) {
        EXPECT_THAT(error_of([&] { file(dir, "s", "a", "b", t); }, EINVAL), HasSubstr("the timeout must be positive"));
        EXPECT_THAT(error_of([&] { file(file::options{.folder = dir, .session = "s", .self = "a", .peer = "b",
                                                      .poll_interval = t}); },
                             EINVAL),
                    HasSubstr("the poll interval must be positive"));
    }
    // A poll interval of "for ever" still ends at the deadline: each pause
    // is cut to the time left.
    file f(file::options{.folder = dir, .session = "s", .self = "a", .peer = "b", .timeout = 300ms,
                         .poll_interval = ms::max()});
    auto start = clock_type::now();
    EXPECT_THAT(error_of([&] { f.exchange(endpoint_with(1)); }, ETIMEDOUT), HasSubstr("within 300 ms"));
    EXPECT_LT(clock_type::now() - start, 3s);
    // No time limit: the budget says so.
    file g(dir, "t", "a", "b", ms::max());
    EXPECT_EQ(g.settings().timeout, ms::max());
}

TEST(Extremes, EnvDescriptorsThatAreNotOpenAreClearErrors) {
    using rcq::handshake::env;
    const int sink = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    const int closed = [] {
        int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        ::close(fd);
        return fd; // no longer open
    }();
    for (int bad : {closed, INT_MAX}) {
        env in(env::options{.timeout = ms::max(), .variable = "RCQ_EXTREMES_NEVER_SET", .in_fd = bad,
                            .out_fd = sink});
        auto start = clock_type::now();
        EXPECT_THAT(error_of([&] { in.exchange(endpoint_with(1)); }, EBADF),
                    HasSubstr("the peer's endpoint line on fd " + std::to_string(bad)));
        EXPECT_LT(clock_type::now() - start, 2s) << "no time limit must not mean waiting on a closed fd";
        env out(env::options{.timeout = ms::max(), .variable = "RCQ_EXTREMES_NEVER_SET", .in_fd = -1,
                             .out_fd = bad});
        ::setenv("RCQ_EXTREMES_NEVER_SET", rcq::to_text(endpoint_with(2)).c_str(), 1);
        EXPECT_THAT(error_of([&] { out.exchange(endpoint_with(1)); }, EBADF),
                    HasSubstr("env handshake: writing our endpoint line to fd " + std::to_string(bad)));
        ::unsetenv("RCQ_EXTREMES_NEVER_SET");
    }
    ::close(sink);
    for (auto t : {ms::zero(), ms{-1}, ms::min()})
        EXPECT_THAT(error_of([&] { env e(t); }, EINVAL), HasSubstr("the timeout must be positive"));
}

} // namespace
