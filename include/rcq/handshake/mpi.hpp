// rcq/handshake/mpi.hpp - swapping endpoints among all the ranks of an MPI
// job, for a full mesh of RC connections.
//
// Needs MPI: this header includes <mpi.h>, so the program must be built with
// MPI's flags (CMake: find_package(MPI COMPONENTS C) and link MPI::MPI_C, or
// compile with mpicxx). It is therefore not part of <rcq/rcq.hpp>, and rcq's
// CMake package and rcq.pc do not depend on MPI: include this header only in
// programs that already use MPI.
#pragma once

#include <rcq/config.hpp>

#if !__has_include(<mpi.h>)
#error "rcq/handshake/mpi.hpp needs MPI's <mpi.h>: link MPI::MPI_C (CMake: find_package(MPI COMPONENTS C)) or build with mpicxx; on Debian: apt-get install libopenmpi-dev"
#endif

#include <rcq/deadline.hpp>
#include <rcq/detail/auth.hpp>
#include <rcq/detail/budget.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>

#include <mpi.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace rcq::detail {

/// Throws rcq::error (EIO) for an MPI return code other than MPI_SUCCESS,
/// naming `call` and MPI's own text for the code (MPI_Error_string).
inline void check_mpi(int rc, const std::string& where, std::string_view call,
                      const std::string& hint = {}) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING] = {};
    int length = 0;
    if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS || length < 0) length = 0;
    throw_invalid(where + ": " + std::string(call) + " failed: " +
                      (length > 0 ? std::string(text, static_cast<std::size_t>(length))
                                  : std::string("(no text for it)")) +
                      " (MPI error code " + std::to_string(rc) + ")",
                  hint, EIO);
}

} // namespace rcq::detail

namespace rcq::handshake {

/// What rcq::handshake::mpi needs; see the class comment.
struct mpi_options {
    /// The ranks of the mesh: every rank of this communicator takes part.
    /// rcq works on its own duplicate of it, so its messages never meet the
    /// program's own on the same communicator.
    MPI_Comm comm = MPI_COMM_WORLD;
    /// The whole handshake's budget: exchange() and barrier() together,
    /// from the first of those calls.
    std::chrono::milliseconds timeout = std::chrono::seconds{30};
};

/// The MPI handshake: the N ranks of a communicator swap endpoints for a
/// full mesh, rank i holding one RC QP for each other rank j, with QP (i, j)
/// connected to QP (j, i).
///
///     MPI_Init(&argc, &argv);
///     rcq::handshake::mpi hs;                    // MPI_COMM_WORLD
///     std::vector<rcq::endpoint> mine(hs.size());// mine[j]: our QP for rank j
///     ... create a QP per other rank, fill in mine[j] ...
///     auto theirs = hs.exchange(mine);           // theirs[j]: rank j's QP for us
///     ... bring QP j to RTS against theirs[j], post its receives ...
///     hs.barrier();                              // every rank's receives are posted
///
/// On the wire. Every rank first gathers every other rank's 8-byte endpoint
/// header (magic "RCQE", version, payload length) with MPI_Iallgather, so
/// that ranks built from different rcq releases fail with an error naming
/// the ranks and versions instead of mismatched message sizes; then rank i
/// sends `mine[j]` in rcq's binary form (rcq::encode) to rank j with one
/// MPI_Ialltoall, and each received endpoint is decoded with its checks.
/// The go-ahead is an MPI_Ibarrier.
///
/// Deadlines. MPI's blocking calls have no time limit of their own: a rank
/// that never arrives (it failed before exchange(), or hangs) would block
/// the others for ever. So rcq starts the nonblocking form of each
/// collective and tests it until it completes or the budget (`timeout`) is
/// spent, then throws ETIMEDOUT. A collective cannot be cancelled in MPI:
/// after a timeout (or any error) the job cannot go on, and the program
/// should end the job with MPI_Abort, which makes the launcher stop every
/// rank. For the same reason a rank that fails before exchange() should call
/// MPI_Abort rather than return quietly (rdma_mesh.cpp does). mpirun's own
/// `--timeout SECONDS` bounds the job as a whole. Calls that are local to a
/// rank (MPI_Comm_rank, MPI_Test) return at once; the MPI_Comm_idup of the
/// communicator is tested under the same budget.
///
/// Errors. rcq's duplicate communicator returns errors (MPI_ERRORS_RETURN)
/// instead of aborting, and every MPI return code is checked: an error names
/// the MPI call and MPI's text for it (MPI_Error_string). The program's own
/// communicator keeps its error handler.
///
/// Trust and memory tokens. The endpoints travel over the channels the
/// launcher set up among the job's processes (Open MPI's daemons and the
/// transport they chose); rcq trusts that whoever can write to them is part
/// of the job, and offers no shared secret here. An endpoint that carries a
/// memory token (an rkey: remote read or write access to our memory) is
/// still sent only when the caller says so with allow_memory_without_secret(),
/// as with the other handshakes.
///
/// Collective: every rank of the communicator calls exchange() and then
/// barrier(), each once, in that order. Call them from the thread that makes
/// the program's MPI calls (MPI_THREAD_SINGLE is enough). MPI must be
/// initialised before construction and must not be finalised before the
/// destructor runs (the destructor frees the duplicate communicator; after
/// MPI_Finalize it leaves it). Move-only; a moved-from object throws on use.
class mpi {
public:
    /// Its settings.
    using options = mpi_options;

    /// With the given settings; throws rcq::error when MPI is not
    /// initialised (or already finalised) or the timeout is not positive.
    explicit mpi(options opts = {}) : opts_(opts) {
        int initialized = 0;
        int finalized = 0;
        rcq::detail::check_mpi(MPI_Initialized(&initialized), "mpi handshake", "MPI_Initialized");
        rcq::detail::check_mpi(MPI_Finalized(&finalized), "mpi handshake", "MPI_Finalized");
        if (!initialized || finalized)
            throw_invalid(std::string("mpi handshake: MPI is ") +
                              (finalized ? "already finalised" : "not initialised"),
                          "construct rcq::handshake::mpi after MPI_Init (or MPI_Init_thread) and "
                          "destroy it before MPI_Finalize");
        if (opts_.timeout <= std::chrono::milliseconds::zero())
            throw_invalid("mpi handshake: the timeout must be positive");
        rcq::detail::check_mpi(MPI_Comm_rank(opts_.comm, &rank_), "mpi handshake", "MPI_Comm_rank");
        rcq::detail::check_mpi(MPI_Comm_size(opts_.comm, &size_), "mpi handshake", "MPI_Comm_size");
        phase_ = phase::fresh;
    }

    /// Takes over; `other` is left moved-from.
    mpi(mpi&& other) noexcept
        : opts_(other.opts_), auth_(std::move(other.auth_)), deadline_(other.deadline_),
          comm_(std::exchange(other.comm_, MPI_COMM_NULL)), rank_(other.rank_), size_(other.size_),
          pending_(std::exchange(other.pending_, false)), buffers_(std::move(other.buffers_)),
          phase_(std::exchange(other.phase_, phase::moved_from)) {}

    /// Takes over; `other` is left moved-from.
    mpi& operator=(mpi&& other) noexcept {
        if (this != &other) {
            release();
            opts_ = other.opts_;
            auth_ = std::move(other.auth_);
            deadline_ = other.deadline_;
            comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
            rank_ = other.rank_;
            size_ = other.size_;
            pending_ = std::exchange(other.pending_, false);
            buffers_ = std::move(other.buffers_);
            phase_ = std::exchange(other.phase_, phase::moved_from);
        }
        return *this;
    }

    mpi(const mpi&) = delete;
    mpi& operator=(const mpi&) = delete;

    /// Frees the duplicate communicator (unless MPI is already finalised).
    ~mpi() { release(); }

    /// Lets exchange() send endpoints that carry a memory token; see the
    /// class comment on trust.
    void allow_memory_without_secret() noexcept { auth_.allow_memory_without_secret(); }

    /// This process's rank in the communicator.
    int rank() const noexcept { return rank_; }
    /// The number of ranks in the mesh.
    int size() const noexcept { return size_; }

    /// Sends `local[j]` (our endpoint for rank j) to every rank j and returns
    /// what each sent us: element j is rank j's endpoint for this rank.
    /// `local` must have size() elements; our own element is not sent and
    /// comes back value-initialised. Collective (see the class comment).
    /// Throws rcq::error: EINVAL for a wrong count, EACCES for a memory token
    /// not allowed, EPROTO naming the rank whose endpoint is of another
    /// version or malformed, ETIMEDOUT when not every rank got here within
    /// the budget, EIO for an MPI error.
    std::vector<endpoint> exchange(std::span<const endpoint> local) {
        require(phase::fresh, "exchange()", "call exchange() once, then barrier()");
        if (local.size() != static_cast<std::size_t>(size_))
            throw_invalid(role() + ": exchange() was given " + std::to_string(local.size()) +
                              " endpoints for a communicator of " + std::to_string(size_) + " ranks",
                          "pass one endpoint per rank, indexed by rank (our own slot is ignored)");
        for (int j = 0; j < size_; ++j)
            if (j != rank_) auth_.check_offer(local[static_cast<std::size_t>(j)], role());
        const deadline& dl = budget();
        open_communicator(dl);

        // 1. The headers: every rank's magic, version and payload length.
        const auto n = static_cast<std::size_t>(size_);
        const std::array<std::byte, endpoint_wire_size> own = encode(endpoint{});
        buffers_.header_out.assign(own.begin(), own.begin() + rcq::detail::endpoint_header_size);
        buffers_.headers_in.assign(n * rcq::detail::endpoint_header_size, std::byte{});
        run(MPI_Iallgather(buffers_.header_out.data(), int{rcq::detail::endpoint_header_size}, MPI_BYTE,
                           buffers_.headers_in.data(), int{rcq::detail::endpoint_header_size}, MPI_BYTE,
                           comm_, &buffers_.request),
            "MPI_Iallgather (endpoint headers)", dl);
        for (std::size_t j = 0; j < n; ++j) {
            std::span<const std::byte> header(buffers_.headers_in.data() + j * rcq::detail::endpoint_header_size,
                                              rcq::detail::endpoint_header_size);
            try {
                rcq::detail::check_endpoint_header(header);
            } catch (const error& e) {
                throw error(e.code(), role() + ": rank " + std::to_string(j) + " speaks another "
                                          "endpoint format: " + e.step(),
                            "build every rank from the same rcq release (one binary for the job)");
            }
        }

        // 2. The endpoints: rank i's slot j goes to rank j.
        buffers_.out.assign(n * endpoint_wire_size, std::byte{});
        buffers_.in.assign(n * endpoint_wire_size, std::byte{});
        for (std::size_t j = 0; j < n; ++j) {
            if (j == static_cast<std::size_t>(rank_)) continue;
            const auto bytes = encode(local[j]);
            std::copy(bytes.begin(), bytes.end(), buffers_.out.begin() + static_cast<std::ptrdiff_t>(j * endpoint_wire_size));
        }
        run(MPI_Ialltoall(buffers_.out.data(), int{endpoint_wire_size}, MPI_BYTE, buffers_.in.data(),
                          int{endpoint_wire_size}, MPI_BYTE, comm_, &buffers_.request),
            "MPI_Ialltoall (endpoints)", dl);
        std::vector<endpoint> remote(n);
        for (std::size_t j = 0; j < n; ++j) {
            if (j == static_cast<std::size_t>(rank_)) continue;
            try {
                remote[j] = decode(std::span<const std::byte>(buffers_.in.data() + j * endpoint_wire_size,
                                                              endpoint_wire_size));
            } catch (const error& e) {
                throw error(e.code(), role() + ": the endpoint from rank " + std::to_string(j) + ": " +
                                          e.step(),
                            e.hint());
            }
        }
        phase_ = phase::exchanged;
        return remote;
    }

    /// The go-ahead: returns once every rank called it (MPI_Ibarrier under
    /// the budget). Call it once this rank's QPs are in RTS with the receives
    /// its peers' first sends land in. Throws rcq::error: ETIMEDOUT when not
    /// every rank got here in time, EIO for an MPI error.
    void barrier() {
        require(phase::exchanged, "barrier()", "call exchange() first, then barrier(), once each");
        const deadline& dl = budget();
        run(MPI_Ibarrier(comm_, &buffers_.request), "MPI_Ibarrier", dl);
        phase_ = phase::done;
    }

    /// For narration: "MPI handshake, rank 2 of 4".
    std::string describe() const {
        return "MPI handshake, rank " + std::to_string(rank_) + " of " + std::to_string(size_);
    }

    /// The settings in use.
    const options& settings() const noexcept { return opts_; }

private:
    enum class phase { fresh, exchanged, done, moved_from };

    // What a started collective reads and writes; it must outlive the
    // request, so it lives here and is leaked on purpose when a timed-out
    // request is still pending at destruction.
    struct buffers {
        MPI_Request request = MPI_REQUEST_NULL;
        std::vector<std::byte> header_out, headers_in, out, in;
    };

    std::string role() const {
        return "mpi handshake (rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ")";
    }

    const deadline& budget() { return rcq::detail::budget(deadline_, opts_.timeout); }

    void require(phase wanted, const char* call, const char* hint) const {
        if (phase_ == wanted) return;
        if (phase_ == phase::moved_from)
            throw_invalid("mpi handshake: " + std::string(call) + " on a moved-from object");
        if (pending_)
            throw_invalid(role() + ": " + call + " after a collective that did not complete",
                          "the job cannot go on: end it with MPI_Abort");
        throw_invalid(role() + ": " + call + " called out of order", hint);
    }

    void open_communicator(const deadline& dl) {
        rcq::detail::check_mpi(MPI_Comm_idup(opts_.comm, &comm_, &buffers_.request), role(), "MPI_Comm_idup");
        wait("MPI_Comm_idup", dl);
        rcq::detail::check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), role(),
                          "MPI_Comm_set_errhandler");
    }

    // Checks the start of a nonblocking collective, then waits for it.
    void run(int started, const char* call, const deadline& dl) {
        rcq::detail::check_mpi(started, role(), call);
        wait(call, dl);
    }

    // Tests the pending request until it completes or `dl` passes. The first
    // tests follow each other closely (a mesh that is all there completes
    // in microseconds); then every millisecond, to leave the cores to the
    // ranks still on their way.
    void wait(const char* call, const deadline& dl) {
        pending_ = true;
        for (unsigned tests = 0;; ++tests) {
            int done = 0;
            rcq::detail::check_mpi(MPI_Test(&buffers_.request, &done, MPI_STATUS_IGNORE), role(),
                              std::string("MPI_Test of ") + call);
            if (done) {
                pending_ = false;
                return;
            }
            if (dl.expired())
                throw_error(role() + ": " + call + " did not complete within " +
                                rcq::detail::budget_text(opts_.timeout) + ": not every rank of the " +
                                std::to_string(size_) + " got there",
                            "another rank failed before this step (its output says why) or is "
                            "slower than the budget; the collective cannot be cancelled, so end the "
                            "job with MPI_Abort",
                            ETIMEDOUT);
            if (tests < 1000)
                std::this_thread::yield();
            else
                std::this_thread::sleep_for(std::chrono::milliseconds{1});
        }
    }

    void release() noexcept {
        if (phase_ == phase::moved_from) return;
        int finalized = 1;
        if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return;
        if (pending_) {
            // MPI still owns the buffers and the communicator: leave them.
            new buffers(std::move(buffers_));
            return;
        }
        if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    }

    options opts_;
    rcq::detail::handshake_auth auth_;
    std::optional<deadline> deadline_; // set on first use
    MPI_Comm comm_ = MPI_COMM_NULL;     // our duplicate, from exchange() on
    int rank_ = 0;
    int size_ = 0;
    bool pending_ = false; // a collective started and did not complete
    buffers buffers_;
    phase phase_ = phase::moved_from; // until the constructor has checked everything
};

} // namespace rcq::handshake
