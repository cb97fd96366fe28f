// The extremes of what a user passes that only the device can judge: a port
// it does not have, an empty GID index, a CQ or queues deeper than its
// limits, more inline data than it takes, a buffer larger than memory. Each
// must end in a clear rcq::error from the step that meets it, before any
// handshake (the handshake here is a client to a port nobody listens on, so
// reaching it shows in the message). And "no time limit" for completions
// saturates: a wait with completion_timeout milliseconds::max() gets its
// completion. The option checks that need no device are in
// tests/unit/extremes_test.cpp.
#include "rdma_env.hpp"

#include <rcq/rcq.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <future>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using testing::HasSubstr;

rcq::connection_options options() {
    rcq::connection_options o;
    o.device = rdma_test::device_name();
    o.gid_index = rdma_test::gid_index();
    return o;
}

std::string host() {
    const char* ip = std::getenv("RCQ_IP");
    return ip != nullptr ? ip : "127.0.0.1";
}

template <class Conn = rcq::connection<>>
std::string error_of(const rcq::connection_options& opts, const typename Conn::buffer_config& cfg = {}) {
    try {
        Conn c(rcq::handshake::tcp::client("127.0.0.1", 1, 1s), opts, cfg);
    } catch (const rcq::error& e) {
        return e.what();
    }
    ADD_FAILURE() << "no rcq::error";
    return {};
}

struct device_case {
    const char* what;
    std::function<void(rcq::connection_options&)> set;
    std::vector<std::string> message;
};

TEST(Extremes, ValuesBeyondTheDevicesLimitsFailAtTheirStep) {
    const std::vector<device_case> cases = {
        {"port 255", [](auto& o) { o.port = 255; }, {"ibv_query_port(", "port 255)", "ports count from 1"}},
        {"gid_index 255", [](auto& o) { o.gid_index = 255; }, {"GID index 255 on", "is empty or out of range"}},
        {"cq_depth INT_MAX", [](auto& o) { o.cq_depth = INT_MAX; },
         {"ibv_create_cq(depth 2147483647)", "max_cqe"}},
        {"max_send_wr 2^30", [](auto& o) {
             o.caps.max_send_wr = 1u << 30;
             o.cq_depth = (1 << 30) + 64;
         },
         {"ibv_create_", "max_"}},
        {"max_inline_data UINT32_MAX", [](auto& o) { o.caps.max_inline_data = UINT32_MAX; },
         {"ibv_create_qp(RC, send_wr"}},
        {"initiator_depth 255", [](auto& o) { o.initiator_depth = 255; },
         {"initiator_depth 255 is more than", "allows (max_qp_init_rd_atom"}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        auto opts = options();
        c.set(opts);
        const auto msg = error_of(opts);
        for (const auto& part : c.message) EXPECT_THAT(msg, HasSubstr(part));
        EXPECT_THAT(msg, testing::Not(HasSubstr("tcp client"))) << "the handshake was reached";
    }
}

TEST(Extremes, ABufferLargerThanMemoryIsAClearError) {
    using huge_conn = rcq::connection<rcq::buffer::owned<rcq::buffer::run_time_size>>;
    const auto msg = error_of<huge_conn>(options(), {.bytes = std::size_t{1} << 40});
    // Refused by mmap (no such memory) or, where the kernel overcommits, by
    // the registration that must pin it.
    EXPECT_THAT(msg, testing::AnyOf(HasSubstr("mmap(1099511627776 bytes)"),
                                    HasSubstr("ibv_reg_mr(1099511627776 bytes)")));
    EXPECT_THAT(msg, testing::Not(HasSubstr("tcp client")));
}

TEST(Extremes, NoTimeLimitForCompletionsStillGetsThem) {
    auto opts = options();
    opts.completion_timeout = std::chrono::milliseconds::max();
    auto listening = rcq::handshake::tcp::server(0, 20s);
    const std::uint16_t port = listening.port();
    auto server = std::async(std::launch::async, [&] {
        rcq::connection<> conn(std::move(listening), opts);
        EXPECT_EQ(conn.post_recv(0, 64, 1), 0);
        conn.ready();
        EXPECT_EQ(conn.wait("the client's SEND").byte_len, 64u);
        conn.ready();
    });
    rcq::connection<> conn(rcq::handshake::tcp::client(host(), port, 20s), opts);
    conn.ready();
    EXPECT_EQ(conn.post_send(4096 - 63, 64, 2), ERANGE) << "longer than the buffer's rest: refused, nothing posted";
    EXPECT_EQ(conn.post_send(4096 - 64, 64, 2), 0);
    EXPECT_EQ(conn.post_send(4096, 1, 3), ERANGE);
    EXPECT_EQ(conn.post_send(SIZE_MAX, UINT32_MAX, 3), ERANGE);
    const auto start = std::chrono::steady_clock::now();
    conn.wait("our SEND");
    EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
    conn.ready();
    server.get();
}

} // namespace
