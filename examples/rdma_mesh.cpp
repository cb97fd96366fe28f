// rdma_mesh: N ranks started by mpirun build a full mesh of RC connections
// (rank i has one QP to each other rank j) with rcq::handshake::mpi, then
// every rank sends a message to every other rank and checks the one it
// receives from each, byte for byte. All ranks exit with the same status.
//
//   mpirun -np 4 --mca pml ob1 --mca btl self,vader,tcp --mca osc pt2pt
//          rdma_mesh [-d DEV] [-g GID_INDEX] [-t SECONDS] [--allow-memory]
//   (one command line)
//
// Open MPI must keep its own traffic off the RDMA device that rcq uses:
// `--mca pml ob1` (not ucx, nor cm with its libfabric/PSM transports),
// `--mca btl self,vader,tcp` (loopback, shared memory and TCP; not openib or
// ofi) and `--mca osc pt2pt` (one-sided windows over pml, not ucx or rdma).
// The same as environment variables: OMPI_MCA_pml=ob1
// OMPI_MCA_btl=self,vader,tcp OMPI_MCA_osc=pt2pt. As root, mpirun also
// wants --allow-run-as-root; with more ranks than cores, --oversubscribe.
//
// What bounds it: the MPI handshake tests each collective under its own
// deadline (-t, 30 s by default) instead of blocking in MPI for ever; a rank
// that fails calls MPI_Abort, which has mpirun stop every rank at once;
// mpirun's --timeout bounds the job as a whole.
#include "example_options.hpp"
#include "mesh_traffic.hpp"

#include <rcq/handshake/mpi.hpp>
#include <rcq/rcq.hpp>

#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

namespace {

struct settings {
    std::string device;
    std::optional<int> gid_index;
    std::chrono::seconds timeout{30};
    bool allow_memory = false; // publish a memory token (an rkey) to the other ranks
};

settings parse(int argc, char** argv) {
    settings s;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::invalid_argument(std::string(arg) + " needs a value");
            return argv[++i];
        };
        if (arg == "-d")
            s.device = value();
        else if (arg == "-g")
            s.gid_index = example::parse_number<int>(value(), 0, 255, "GID index");
        else if (arg == "-t")
            s.timeout = std::chrono::seconds(example::parse_number<int>(value(), 1, 3600, "timeout"));
        else if (arg == "--allow-memory")
            s.allow_memory = true;
        else
            throw std::invalid_argument("unknown argument " + std::string(arg) +
                                        " (usage: rdma_mesh [-d DEV] [-g GID_INDEX] [-t SECONDS] "
                                        "[--allow-memory])");
    }
    return s;
}

// Every rank's QPs, messages and checks; returns whether all was right on
// every rank (MPI_Allreduce, while the QPs still exist: a rank that is done
// keeps its QPs until every rank is).
bool run(const settings& s, int rank, int size) {
    // The buffer: a receive slot and a send slot per rank (up to 256 ranks).
    using buffer = rcq::buffer::owned<example::mesh_buffer_needed(256)>;
    if (size > 256) throw std::invalid_argument("this example is sized for at most 256 ranks");
    rcq::resources_options o;
    o.device = s.device;
    o.gid_index = s.gid_index;
    o.max_qps = static_cast<std::uint32_t>(size > 1 ? size - 1 : 1);
    o.caps.max_send_wr = 4;
    o.caps.max_recv_wr = 4;
    if (s.allow_memory) o.remote_access = IBV_ACCESS_REMOTE_WRITE;
    const auto start = std::chrono::steady_clock::now();
    rcq::resources<rcq::poll::blocking, buffer> res(o);
    const auto opened = std::chrono::steady_clock::now();

    rcq::handshake::mpi hs({.timeout = s.timeout});
    if (s.allow_memory) hs.allow_memory_without_secret(); // the job's own ranks; see mpi.hpp
    rcq::mesh m(res, std::move(hs));
    const auto connected = std::chrono::steady_clock::now();
    const auto outcome = example::run_mesh_traffic(res, m, s.timeout);
    const auto finished = std::chrono::steady_clock::now();
    using ms = std::chrono::milliseconds;
    if (rank == 0)
        std::cout << "rank 0: " << size << " ranks on " << res.device()->device->name << ", "
                  << size - 1 << " QPs per rank; device opened in "
                  << std::chrono::duration_cast<ms>(opened - start).count() << " ms, mesh in RTS "
                  << std::chrono::duration_cast<ms>(connected - opened).count()
                  << " ms later, messages sent and checked in "
                  << std::chrono::duration_cast<ms>(finished - connected).count() << " ms\n";

    std::ostringstream line;
    line << "rank " << rank << ": " << outcome.checked << " of " << size - 1
         << " messages received and checked";
    for (const auto& p : outcome.problems) line << "; " << p;
    std::cout << line.str() << std::endl;
    const int ok = outcome.problems.empty() && outcome.checked == size - 1 ? 1 : 0;
    int all_ok = 0;
    rcq::detail::check_mpi(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD),
                           "rdma_mesh", "MPI_Allreduce (the outcome)");
    return all_ok == 1;
}

} // namespace

int main(int argc, char** argv) {
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
        std::cerr << "rdma_mesh: MPI_Init failed\n";
        return 1;
    }
    int rank = 0;
    int size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    bool all_ok = false;
    try {
        all_ok = run(parse(argc, argv), rank, size);
    } catch (const std::exception& e) {
        // The other ranks may be waiting in a collective this rank will never
        // join: end the job rather than leave them to their deadline.
        std::cerr << "rank " << rank << ": " << e.what() << std::endl;
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    // The same exit status on every rank: all succeeded, or none did.
    if (rank == 0)
        std::cout << (all_ok ? "rdma_mesh: every message between every pair of ranks checked"
                             : "rdma_mesh: FAILED on at least one rank")
                  << std::endl;
    MPI_Finalize();
    return all_ok ? 0 : 1;
}
