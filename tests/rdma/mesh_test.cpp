// A mesh of 4 ranks on one device through the file mesh handshake: each rank
// a thread of this process with resources of its own (its own device
// context, PD, CQ), exactly as 4 processes would have them; every rank sends
// a message to every other rank and checks each one it receives.
#include "rdma_env.hpp"

#include "../../examples/mesh_traffic.hpp"

#include <rcq/handshake/file_mesh.hpp>
#include <rcq/mesh.hpp>
#include <rcq/rcq.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <latch>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct rank_result {
    int checked = 0;
    std::vector<std::string> problems;
    std::uint32_t qps = 0;
};

// `done`: every rank keeps its QPs until all are done, so that none is
// destroyed while a peer still waits for the ACK of its send.
rank_result run_rank(const fs::path& folder, int rank, int size, std::latch& done) {
    rank_result r;
    bool arrived = false;
    try {
        rcq::resources_options o;
        o.device = rdma_test::device_name();
        o.gid_index = rdma_test::gid_index();
        o.max_qps = static_cast<std::uint32_t>(size - 1);
        o.caps.max_send_wr = 4;
        o.caps.max_recv_wr = 4;
        rcq::resources<rcq::poll::blocking, rcq::buffer::owned<example::mesh_buffer_needed(8)>> res(o);
        rcq::mesh m(res, rcq::handshake::file_mesh({.folder = folder,
                                                    .session = "rdmamesh",
                                                    .rank = rank,
                                                    .size = size,
                                                    .timeout = 20s,
                                                    .poll_interval = 5ms}));
        for (int j : m.peers()) {
            ++r.qps;
            // QP (i, j) is connected to QP (j, i): its peer is the QP rank j made for us.
            if (m.remote(j).qpn == m.local(j).qpn) r.problems.push_back("a QP connected to itself");
        }
        auto outcome = example::run_mesh_traffic(res, m, 10s);
        r.checked = outcome.checked;
        r.problems = std::move(outcome.problems);
        arrived = true;
        done.arrive_and_wait();
    } catch (const std::exception& e) {
        r.problems.push_back(e.what());
    }
    if (!arrived) done.count_down();
    return r;
}

TEST(FileMeshOnDevice, FourRanksEachSendACheckedMessageToEveryOther) {
    std::string pattern = (fs::temp_directory_path() / "rcq-rdma-mesh-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    const fs::path folder = pattern;
    constexpr int size = 4;
    std::latch done(size);
    std::vector<std::future<rank_result>> ranks;
    for (int r = 0; r < size; ++r)
        ranks.push_back(std::async(std::launch::async, run_rank, folder, r, size, std::ref(done)));
    for (int r = 0; r < size; ++r) {
        const rank_result result = ranks[static_cast<std::size_t>(r)].get();
        EXPECT_EQ(result.qps, static_cast<std::uint32_t>(size - 1)) << "rank " << r;
        EXPECT_EQ(result.checked, size - 1) << "rank " << r;
        EXPECT_THAT(result.problems, ::testing::IsEmpty()) << "rank " << r;
    }
    fs::remove_all(folder);
}

} // namespace
