// rcq::handshake::mpi without an RDMA device: run under mpirun with 4 ranks
// (ctest does), each rank a GoogleTest program whose cases run on all ranks
// together. Only rank 0 prints; the exit status is the same on every rank
// (any failure anywhere fails all).
#include <rcq/handshake/mpi.hpp>

#include "../unit/support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace {

using unit_test::endpoint_with;
using unit_test::endpoint_with_memory;
using unit_test::error_of;
using unit_test::mesh_endpoint;
using unit_test::mesh_endpoints;
using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::HasSubstr;

int world_rank() {
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}
int world_size() {
    int n = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

TEST(MpiHandshake, EveryRankGetsWhatEachOtherRankSentIt) {
    rcq::handshake::mpi hs;
    ASSERT_EQ(hs.size(), world_size());
    ASSERT_EQ(hs.rank(), world_rank());
    ASSERT_GE(hs.size(), 2) << "run under mpirun with several ranks";
    EXPECT_EQ(hs.describe(), "MPI handshake, rank " + std::to_string(hs.rank()) + " of " +
                                 std::to_string(hs.size()));
    const auto got = hs.exchange(mesh_endpoints(hs.rank(), hs.size()));
    ASSERT_EQ(got.size(), static_cast<std::size_t>(hs.size()));
    for (int j = 0; j < hs.size(); ++j)
        EXPECT_EQ(got[static_cast<std::size_t>(j)], j == hs.rank() ? rcq::endpoint{} : mesh_endpoint(j, hs.rank()))
            << "from rank " << j;
    hs.barrier();
}

TEST(MpiHandshake, TheProgramsCommunicatorIsLeftAlone) {
    // A message of the program's own on MPI_COMM_WORLD, sent before the
    // exchange and received after it, is not taken by rcq's collectives.
    const int r = world_rank();
    const int n = world_size();
    int token = 4200 + r;
    MPI_Request send{};
    ASSERT_EQ(MPI_Isend(&token, 1, MPI_INT, (r + 1) % n, 7, MPI_COMM_WORLD, &send), MPI_SUCCESS);
    {
        rcq::handshake::mpi hs;
        hs.exchange(mesh_endpoints(r, n));
        hs.barrier();
    }
    int got = -1;
    ASSERT_EQ(MPI_Recv(&got, 1, MPI_INT, (r + n - 1) % n, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE), MPI_SUCCESS);
    ASSERT_EQ(MPI_Wait(&send, MPI_STATUS_IGNORE), MPI_SUCCESS);
    EXPECT_EQ(got, 4200 + (r + n - 1) % n);
}

TEST(MpiHandshake, ASubCommunicatorIsAMeshOfItsOwn) {
    // Even and odd ranks: two meshes at once.
    MPI_Comm half{};
    ASSERT_EQ(MPI_Comm_split(MPI_COMM_WORLD, world_rank() % 2, world_rank(), &half), MPI_SUCCESS);
    {
        rcq::handshake::mpi hs({.comm = half});
        const auto got = hs.exchange(mesh_endpoints(hs.rank(), hs.size()));
        for (int j = 0; j < hs.size(); ++j)
            if (j != hs.rank()) {
                EXPECT_EQ(got[static_cast<std::size_t>(j)], mesh_endpoint(j, hs.rank()));
            }
        hs.barrier();
    }
    MPI_Comm_free(&half);
}

TEST(MpiHandshake, MemoryTokensGoOnlyWhenAllowed) {
    const int r = world_rank();
    const int n = world_size();
    auto with_memory = mesh_endpoints(r, n);
    for (int j = 0; j < n; ++j)
        if (j != r) with_memory[static_cast<std::size_t>(j)] = endpoint_with_memory(static_cast<std::uint32_t>(100 * r + j));
    {
        // Refused on every rank before any MPI call: nobody is left waiting.
        rcq::handshake::mpi hs;
        EXPECT_THAT(error_of([&] { hs.exchange(with_memory); }, EACCES),
                    AllOf(HasSubstr("mpi handshake (rank " + std::to_string(r) + " of "),
                          HasSubstr("carries a memory token")));
    }
    rcq::handshake::mpi hs;
    hs.allow_memory_without_secret();
    const auto got = hs.exchange(with_memory);
    for (int j = 0; j < n; ++j)
        if (j != r) {
            EXPECT_EQ(got[static_cast<std::size_t>(j)],
                      endpoint_with_memory(static_cast<std::uint32_t>(100 * j + r)));
        }
    hs.barrier();
}

TEST(MpiHandshake, MisuseIsRefusedWithoutTouchingMpi) {
    const int n = world_size();
    rcq::handshake::mpi hs;
    EXPECT_THAT(error_of([&] { hs.exchange(mesh_endpoints(0, n + 1)); }, EINVAL),
                HasSubstr("exchange() was given " + std::to_string(n + 1) + " endpoints for a communicator of " +
                          std::to_string(n) + " ranks"));
    EXPECT_THAT(error_of([&] { hs.barrier(); }, EINVAL), HasSubstr("barrier() called out of order"));
    EXPECT_THAT(error_of([] { rcq::handshake::mpi({.timeout = 0ms}); }, EINVAL),
                HasSubstr("the timeout must be positive"));
    auto moved = std::move(hs);
    // NOLINTNEXTLINE(bugprone-use-after-move): the use after move under test
    EXPECT_THAT(error_of([&] { hs.barrier(); }, EINVAL), HasSubstr("on a moved-from object"));
}

TEST(MpiHandshake, AnMpiErrorNamesTheCallAndMpisText) {
    EXPECT_THAT(error_of([] { rcq::detail::check_mpi(MPI_ERR_TRUNCATE, "mpi handshake", "MPI_Ialltoall"); }, EIO),
                AllOf(HasSubstr("mpi handshake: MPI_Ialltoall failed: "), HasSubstr("truncated"),
                      HasSubstr("(MPI error code " + std::to_string(MPI_ERR_TRUNCATE) + ")")));
}

// Last: leaves a collective pending on rcq's own communicator of ranks 0..n-2.
TEST(MpiHandshake, ARankThatNeverComesEndsInATimeoutNotAHang) {
    const int r = world_rank();
    const int n = world_size();
    // A communicator of its own: what stays pending must not meet the
    // collectives of MPI_COMM_WORLD that follow.
    MPI_Comm own{};
    ASSERT_EQ(MPI_Comm_dup(MPI_COMM_WORLD, &own), MPI_SUCCESS);
    rcq::handshake::mpi hs({.comm = own, .timeout = 500ms});
    if (r == n - 1) {
        // Stays out of the exchange; the others must give up within their budget.
        std::this_thread::sleep_for(1500ms);
    } else {
        const auto start = std::chrono::steady_clock::now();
        EXPECT_THAT(error_of([&] { hs.exchange(mesh_endpoints(r, n)); }, ETIMEDOUT),
                    AllOf(HasSubstr("did not complete within 500 ms: not every rank of the " + std::to_string(n)),
                          HasSubstr("end the job with MPI_Abort")));
        EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
        EXPECT_THAT(error_of([&] { hs.barrier(); }, EINVAL), HasSubstr("after a collective that did not complete"));
    }
    ASSERT_EQ(MPI_Barrier(MPI_COMM_WORLD), MPI_SUCCESS);
}

} // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    ::testing::InitGoogleTest(&argc, argv);
    if (world_rank() != 0) {
        auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
        delete listeners.Release(listeners.default_result_printer());
    }
    const int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
    int any_failed = 1;
    MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (failed) std::printf("rank %d: some tests failed here\n", world_rank());
    MPI_Finalize();
    return any_failed;
}
