// rcq/stub/provider.hpp - a counting stub provider, for measuring what
// posting and polling cost without any RDMA hardware.
//
// What it is: a verbs "device" that lives in memory. libibverbs inlines the
// data path: ibv_post_send(qp, ...) is one indirect call through
// qp->context->ops.post_send, and ibv_poll_cq, ibv_post_recv,
// ibv_post_srq_recv and ibv_req_notify_cq are the same. So a real
// ibv_context whose ops table points at our own functions, plus a QP, CQ and
// SRQ that refer to it, is all it takes for the very code an application
// compiles (raw verbs or rcq) to land here. Those functions count what they
// are given and fingerprint the work requests, so two programs can be shown
// to have handed the provider the same work. It serves instruction counts
// (callgrind) and micro-benchmarks (Google Benchmark) of the inlined hot path.
//
// What it is not: an RDMA device. Nothing is sent, nothing is received, no
// memory is registered (the keys are made up), no QP changes state; a poll
// returns made-up successful completions (completions_per_poll), or, when
// asked (complete_posted), one successful completion per signaled send and
// per receive posted, in posting order, with the request's wr_id. A program
// that works on the stub proves nothing about RDMA; test that on a device
// (tests/softroce runs rxe0 in a VM).
//
// The control path is a different matter: verbs such as ibv_query_qp reach
// the provider through a table private to libibverbs, which a context made
// in memory does not have. The few of them rcq calls on the objects used here
// (ibv_query_qp from rcq::send_queue, ibv_create/destroy_comp_channel from
// rcq::poll::blocking, ibv_modify_qp from a transition) are therefore
// interposed by the stub's source file (ibv_modify_qp to ERROR flushes what
// complete_posted() still holds: those completions turn IBV_WC_WR_FLUSH_ERR):
// for a stub object they answer themselves, for anything else they hand over
// to libibverbs. ibv_destroy_qp/cq/srq on a stub object abort with a
// message, since the stub, not the caller, owns those objects; see rts_qp
// and adopted_cq below for wrapping them in rcq's owners safely.
//
// Use: link the CMake target rcq::stub (find_package(rcq), or rcq as a
// subdirectory). It compiles the stub's source file into the program, which
// is where it must be: the interposed verbs only take effect from the
// executable, not from a shared library. Not thread safe: one thread per
// provider.
#pragma once

#include <rcq/cq.hpp>
#include <rcq/qp.hpp>

#include <infiniband/verbs.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>

namespace rcq::stub {

/// What the provider has been handed since the last reset. Two runs that did
/// the same work compare equal, fingerprints included.
struct tally {
    /// Calls of post_send.
    std::uint64_t post_send_calls = 0;
    /// Send work requests, over all calls.
    std::uint64_t send_wrs = 0;
    /// Of them, signaled.
    std::uint64_t signaled_sends = 0;
    /// Calls of post_recv.
    std::uint64_t post_recv_calls = 0;
    /// Receive work requests on the QP.
    std::uint64_t recv_wrs = 0;
    /// Receive work requests on the SRQ.
    std::uint64_t srq_recv_wrs = 0;
    /// Calls of poll_cq.
    std::uint64_t poll_calls = 0;
    /// Completions returned.
    std::uint64_t completions = 0;
    /// Calls of req_notify_cq.
    std::uint64_t notify_calls = 0;
    /// A hash of every field of every work request that the provider would
    /// act on (id, opcode, flags, scatter/gather list, remote address, rkey).
    std::uint64_t fingerprint = 0;

    /// Field-wise equality.
    friend bool operator==(const tally&, const tally&) = default;
};

/// A registered-looking memory region of the stub: real memory with made-up
/// keys. It has bytes() and lkey(), so rcq::local() accepts it.
struct region {
    /// The memory's first byte.
    std::byte* data = nullptr;
    /// Its length in bytes.
    std::size_t size = 0;
    /// A made-up local key.
    std::uint32_t lkey_value = 0;
    /// A made-up remote key.
    std::uint32_t rkey_value = 0;

    /// The memory.
    std::span<std::byte> bytes() const noexcept { return {data, size}; }
    /// The made-up local key.
    std::uint32_t lkey() const noexcept { return lkey_value; }
    /// The made-up remote key.
    std::uint32_t rkey() const noexcept { return rkey_value; }
};

/// One stub device: a context, PD, CQ, RC QP (in RTS as far as anyone asks)
/// and SRQ, plus a memory region. Neither copyable nor movable: the objects
/// point at one another.
class provider {
public:
    /// What ibv_query_qp reports for the stub QP.
    static constexpr std::uint32_t max_send_wr = 256;
    /// What ibv_query_qp reports as the receive queue depth.
    static constexpr std::uint32_t max_recv_wr = 256;
    /// What ibv_query_qp reports as the inline limit.
    static constexpr std::uint32_t max_inline_data = 64;
    /// The size of memory().
    static constexpr std::size_t memory_size = 64 * 1024;

    provider();
    ~provider();
    provider(const provider&) = delete;
    provider& operator=(const provider&) = delete;

    /// The stub context.
    ibv_context* context() const noexcept;
    /// The stub PD.
    ibv_pd* pd() const noexcept;
    /// The stub CQ.
    ibv_cq* cq() const noexcept;
    /// The stub QP, in RTS as far as anyone asks.
    ibv_qp* qp() const noexcept;
    /// The stub SRQ.
    ibv_srq* srq() const noexcept;
    /// The stub's memory with made-up keys.
    region memory() const noexcept;

    /// How many completions each poll_cq call returns (at most what the
    /// caller asked for); 1 at first. 0 makes every poll find the CQ empty.
    void completions_per_poll(int n) noexcept;

    /// On: each poll_cq returns the completions of what was posted, in
    /// order (a successful completion with the wr_id of each signaled send
    /// and of each receive, opcode IBV_WC_SEND or IBV_WC_RECV, byte_len the
    /// request's length), up to `completions_per_poll` at a time. At most
    /// `posted_capacity` may wait to be polled; a post beyond that fails
    /// with ENOMEM. Off (the default): made-up completions, as before.
    void complete_posted(bool on) noexcept;
    /// The status of the completions complete_posted() gives from now on
    /// (IBV_WC_SUCCESS at first), e.g. to deliver a failure.
    void complete_with(ibv_wc_status status) noexcept;
    /// Completions complete_posted() can hold.
    static constexpr std::size_t posted_capacity = 1024;

    /// What the provider was handed since the last reset.
    const tally& counts() const noexcept;
    /// Zeroes the counts.
    void reset_counts() noexcept;

    /// Whether `ctx` is a stub context (its ops are ours).
    static bool is_stub(const ibv_context* ctx) noexcept;

    struct device; // the objects, defined in the stub's source file

private:
    std::unique_ptr<device> dev_;
};

/// An rcq::qp<state::rts> over the stub QP that hands the QP back instead of
/// destroying it (rcq's destructor would call ibv_destroy_qp on it).
class rts_qp {
public:
    /// Wraps the stub QP of `p`.
    explicit rts_qp(const provider& p) noexcept
        : qp_(rcq::qp<rcq::state::rts>::adopt_unchecked(p.qp())) {}
    ~rts_qp() { (void)std::move(qp_).release(); }
    rts_qp(const rts_qp&) = delete;
    rts_qp& operator=(const rts_qp&) = delete;

    /// The typed QP.
    rcq::qp<rcq::state::rts>& get() noexcept { return qp_; }

private:
    rcq::qp<rcq::state::rts> qp_;
};

/// An rcq::cq over the stub CQ. rcq::cq has no release(), so the wrapper
/// lives in a union member and its destructor is never run: it holds nothing
/// but the pointer, and the CQ belongs to the stub.
class adopted_cq {
public:
    /// Wraps the stub CQ of `p`.
    explicit adopted_cq(const provider& p) noexcept : cq_(p.cq()) {}
    ~adopted_cq() {} // deliberately leaves cq_ undestroyed
    adopted_cq(const adopted_cq&) = delete;
    adopted_cq& operator=(const adopted_cq&) = delete;

    /// The CQ owner.
    const rcq::cq& get() const noexcept { return cq_; }

private:
    union {
        rcq::cq cq_;
    };
};

} // namespace rcq::stub
