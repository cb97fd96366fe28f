// bench/hot_path_ops.hpp - one operation of the hot path, written twice: by
// hand against raw verbs, and with rcq. The Google Benchmark (hot_path.cpp)
// times these very structs and the `overhead` test (tests/overhead/) counts
// their instructions under callgrind, so both measure the same code.
//
// Each variant is built on a rcq::stub::provider (all set-up happens in the
// constructor) and has `bool step(std::uint64_t i)`: one operation, true on
// success. A raw variant and its rcq twin hand the provider the same work
// requests, field for field; the overhead test checks that through the
// provider's fingerprint. Every step checks the status it gets back, on both
// sides, as a real program must.
#pragma once

#include <rcq/stub/provider.hpp>

#include <rcq/cq.hpp>
#include <rcq/deadline.hpp>
#include <rcq/poll/adaptive.hpp>
#include <rcq/poll/blocking.hpp>
#include <rcq/poll/busy.hpp>
#include <rcq/qp.hpp>
#include <rcq/remote.hpp>
#include <rcq/router.hpp>
#include <rcq/send_queue.hpp>
#include <rcq/wr.hpp>

#include <infiniband/verbs.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#define RCQ_BENCH_INLINE inline __attribute__((always_inline))

namespace rcq_bench {

inline constexpr std::uint32_t message_size = 64;
/// Selective signaling: a send queue of `sq_depth` with one send in
/// `signal_every` signaled (the completion retires the batch).
inline constexpr std::size_t sq_depth = 64;
inline constexpr std::size_t signal_every = 16;
/// Work requests in a chain posted with one call.
inline constexpr std::size_t chain_length = 16;
/// Where the RDMA WRITEs go: made-up peer memory (the stub never touches it).
inline constexpr std::uint64_t peer_addr = 0x7f0000000000;
inline constexpr std::uint32_t peer_rkey = 0xbeef;

// -- a single signaled SEND ----------------------------------------------------

struct raw_send_signaled {
    ibv_qp* qp;
    rcq::stub::region mem;

    explicit raw_send_signaled(rcq::stub::provider& p) : qp(p.qp()), mem(p.memory()) {}

    RCQ_BENCH_INLINE bool step(std::uint64_t i) noexcept {
        ibv_sge sge{reinterpret_cast<std::uintptr_t>(mem.data), message_size, mem.lkey_value};
        ibv_send_wr wr{};
        wr.wr_id = i;
        wr.sg_list = &sge;
        wr.num_sge = 1;
        wr.opcode = IBV_WR_SEND;
        wr.send_flags = IBV_SEND_SIGNALED;
        ibv_send_wr* bad;
        return ibv_post_send(qp, &wr, &bad) == 0;
    }
};

struct rcq_send_signaled {
    rcq::stub::rts_qp qp;
    rcq::stub::region mem;

    explicit rcq_send_signaled(rcq::stub::provider& p) : qp(p), mem(p.memory()) {}

    RCQ_BENCH_INLINE bool step(std::uint64_t i) noexcept {
        const ibv_sge sge = rcq::local(mem, 0, message_size);
        rcq::send_op wr(sge, i);
        return qp.get().post_send(wr) == 0;
    }
};

// -- SENDs under selective signaling -------------------------------------------
// One in signal_every is signaled; its completion is polled at once and frees
// the slots of its batch. Averaged over many steps, the cost per SEND.

struct raw_send_selective {
    ibv_qp* qp;
    ibv_cq* cq;
    rcq::stub::region mem;
    std::size_t outstanding = 0;  // posted, not yet known complete
    std::size_t since_signal = 0; // posted since the last signaled send

    explicit raw_send_selective(rcq::stub::provider& p) : qp(p.qp()), cq(p.cq()), mem(p.memory()) {}

    RCQ_BENCH_INLINE bool step(std::uint64_t i) noexcept {
        if (outstanding == sq_depth) return false; // full: poll first (never happens here)
        ibv_sge sge{reinterpret_cast<std::uintptr_t>(mem.data), message_size, mem.lkey_value};
        ibv_send_wr wr{};
        wr.wr_id = i;
        wr.sg_list = &sge;
        wr.num_sge = 1;
        wr.opcode = IBV_WR_SEND;
        const bool signal = ++since_signal == signal_every;
        wr.send_flags = signal ? IBV_SEND_SIGNALED : 0;
        ibv_send_wr* bad;
        if (ibv_post_send(qp, &wr, &bad) != 0) return false;
        ++outstanding;
        if (!signal) return true;
        since_signal = 0;
        ibv_wc wc;
        if (ibv_poll_cq(cq, 1, &wc) != 1) return false;
        outstanding -= signal_every;
        return true;
    }
};

struct rcq_send_selective {
    rcq::stub::rts_qp qp;
    rcq::stub::adopted_cq cq;
    rcq::stub::region mem;
    rcq::send_queue<sq_depth, signal_every> sq;

    explicit rcq_send_selective(rcq::stub::provider& p)
        : qp(p), cq(p), mem(p.memory()), sq(std::move(qp.get())) {}
    // The queue owns the QP while it lives; rts_qp hands it back to the stub.
    ~rcq_send_selective() { qp.get() = std::move(sq).release(); }
    rcq_send_selective(const rcq_send_selective&) = delete;
    rcq_send_selective& operator=(const rcq_send_selective&) = delete;

    RCQ_BENCH_INLINE bool step(std::uint64_t i) noexcept {
        const ibv_sge sge = rcq::local(mem, 0, message_size);
        rcq::send_op wr(sge, i);
        bool signaled;
        if (sq.post(wr, signaled) != 0) return false;
        if (!signaled) return true;
        ibv_wc wc;
        if (cq.get().poll({&wc, 1}) != 1) return false;
        sq.retire();
        return true;
    }
};

// -- 16 chained RDMA WRITEs, one post ------------------------------------------
// The chain is built once; each step posts it with one call (one doorbell)
// and polls the completion of its last, signaled, request.

struct raw_write_chain {
    ibv_qp* qp;
    ibv_cq* cq;
    std::array<ibv_sge, chain_length> sges{};
    std::array<ibv_send_wr, chain_length> wrs{};

    explicit raw_write_chain(rcq::stub::provider& p) : qp(p.qp()), cq(p.cq()) {
        const rcq::stub::region mem = p.memory();
        for (std::size_t k = 0; k < chain_length; ++k) {
            sges[k] = {reinterpret_cast<std::uintptr_t>(mem.data + k * message_size), message_size,
                       mem.lkey_value};
            ibv_send_wr& wr = wrs[k];
            wr.wr_id = k;
            wr.sg_list = &sges[k];
            wr.num_sge = 1;
            wr.opcode = IBV_WR_RDMA_WRITE;
            wr.send_flags = k + 1 == chain_length ? IBV_SEND_SIGNALED : 0;
            wr.wr.rdma.remote_addr = peer_addr + k * message_size;
            wr.wr.rdma.rkey = peer_rkey;
            wr.next = k + 1 < chain_length ? &wrs[k + 1] : nullptr;
        }
    }

    RCQ_BENCH_INLINE bool step(std::uint64_t) noexcept {
        ibv_send_wr* bad;
        if (ibv_post_send(qp, wrs.data(), &bad) != 0) return false;
        ibv_wc wc;
        return ibv_poll_cq(cq, 1, &wc) == 1;
    }
};

struct rcq_write_chain {
    rcq::stub::rts_qp qp;
    rcq::stub::adopted_cq cq;
    std::array<ibv_sge, chain_length> sges{};
    rcq::wr_chain<chain_length> chain;

    explicit rcq_write_chain(rcq::stub::provider& p) : qp(p), cq(p) {
        const rcq::stub::region mem = p.memory();
        const rcq::remote_region peer(peer_addr, peer_rkey, chain_length * message_size);
        for (std::size_t k = 0; k < chain_length; ++k) {
            sges[k] = rcq::local(mem, k * message_size, message_size);
            chain.set(k, rcq::write_op(sges[k], peer.slice(k * message_size, message_size), k)
                             .signaled(k + 1 == chain_length));
        }
    }

    RCQ_BENCH_INLINE bool step(std::uint64_t) noexcept {
        if (qp.get().post_send(chain.front()) != 0) return false;
        ibv_wc wc;
        return cq.get().poll({&wc, 1}) == 1;
    }
};

// -- a RECV ----------------------------------------------------------------------

struct raw_recv {
    ibv_qp* qp;
    rcq::stub::region mem;

    explicit raw_recv(rcq::stub::provider& p) : qp(p.qp()), mem(p.memory()) {}

    RCQ_BENCH_INLINE bool step(std::uint64_t i) noexcept {
        ibv_sge sge{reinterpret_cast<std::uintptr_t>(mem.data), message_size, mem.lkey_value};
        ibv_recv_wr wr{};
        wr.wr_id = i;
        wr.sg_list = &sge;
        wr.num_sge = 1;
        ibv_recv_wr* bad;
        return ibv_post_recv(qp, &wr, &bad) == 0;
    }
};

struct rcq_recv {
    rcq::stub::rts_qp qp;
    rcq::stub::region mem;

    explicit rcq_recv(rcq::stub::provider& p) : qp(p), mem(p.memory()) {}

    RCQ_BENCH_INLINE bool step(std::uint64_t i) noexcept {
        const ibv_sge sge = rcq::local(mem, 0, message_size);
        rcq::recv_wr wr(sge, i);
        return qp.get().post_recv(wr) == 0;
    }
};

// -- one wait step with a completion ready ----------------------------------------
// The hand-written wait: spin on ibv_poll_cq, looking at the clock now and
// then. Each rcq policy's wait() is measured against it; the deadline is made
// once, outside the step, on both sides.

struct raw_poll {
    ibv_cq* cq;
    std::chrono::steady_clock::time_point until;

    explicit raw_poll(rcq::stub::provider& p)
        : cq(p.cq()), until(std::chrono::steady_clock::now() + std::chrono::hours(1)) {}

    RCQ_BENCH_INLINE bool step(std::uint64_t) noexcept {
        ibv_wc wc;
        for (unsigned spins = 0;; ++spins) {
            const int n = ibv_poll_cq(cq, 1, &wc);
            if (n != 0) return n > 0;
            if (spins % 1024 == 1023 && std::chrono::steady_clock::now() >= until) return false;
        }
    }
};

template <class Policy>
struct rcq_poll {
    rcq::stub::adopted_cq cq;
    Policy policy;
    rcq::deadline until;

    explicit rcq_poll(rcq::stub::provider& p)
        : cq(p), policy(p.context()), until(rcq::deadline::after(std::chrono::hours(1))) {}

    RCQ_BENCH_INLINE bool step(std::uint64_t) noexcept {
        ibv_wc wc;
        return policy.wait(cq.get(), {&wc, 1}, until) > 0;
    }
};

using rcq_poll_busy = rcq_poll<rcq::poll::busy>;
using rcq_poll_blocking = rcq_poll<rcq::poll::blocking>;
using rcq_poll_adaptive = rcq_poll<rcq::poll::adaptive<>>;

// -- routing a batch of completions by QP number -------------------------------

/// Completions per poll in the routing rows, and the QPs routed: the stub's
/// QP (whose QPN every stub completion carries) among consecutive QPNs, as a
/// device hands them out.
inline constexpr int route_batch = 16;
inline constexpr std::uint32_t routed_qps = 8;

/// What the caller keeps per peer in the routing rows.
struct peer_counter {
    std::uint64_t completions = 0;
};

/// By hand: one ibv_poll_cq for a batch, then a switch on wc.qp_num over the
/// QPNs the program knows (a jump table: the cheapest lookup there is, and
/// one that only works when the QPNs are known when the program is written).
struct raw_route {
    ibv_cq* cq;
    std::uint32_t base;
    std::array<peer_counter, routed_qps> peers{};
    std::uint64_t unknown = 0;

    explicit raw_route(rcq::stub::provider& p) : cq(p.cq()), base(p.qp()->qp_num - 3) {
        p.completions_per_poll(route_batch);
    }

    RCQ_BENCH_INLINE bool step(std::uint64_t) noexcept {
        ibv_wc wc[route_batch];
        const int n = ibv_poll_cq(cq, route_batch, wc);
        if (n <= 0) return false;
        for (int i = 0; i < n; ++i) {
            switch (wc[i].qp_num - base) {
            case 0: ++peers[0].completions; break;
            case 1: ++peers[1].completions; break;
            case 2: ++peers[2].completions; break;
            case 3: ++peers[3].completions; break;
            case 4: ++peers[4].completions; break;
            case 5: ++peers[5].completions; break;
            case 6: ++peers[6].completions; break;
            case 7: ++peers[7].completions; break;
            default: ++unknown;
            }
        }
        return unknown == 0;
    }
};

/// With rcq: rcq::router over the same QPNs, the same batch and handler.
struct rcq_route {
    rcq::stub::adopted_cq cq;
    std::array<peer_counter, routed_qps> peers{};
    rcq::router<peer_counter> routes;
    std::uint64_t unknown = 0;

    explicit rcq_route(rcq::stub::provider& p) : cq(p), routes(64) {
        p.completions_per_poll(route_batch);
        for (std::uint32_t i = 0; i < routed_qps; ++i)
            if (routes.add(p.qp()->qp_num - 3 + i, peers[i]) != 0) unknown = 1;
    }

    RCQ_BENCH_INLINE bool step(std::uint64_t) noexcept {
        ibv_wc wc[route_batch];
        const int n = routes.poll(
            cq.get(), wc, [](peer_counter& c, const ibv_wc&) { ++c.completions; },
            [this](const ibv_wc&) { ++unknown; });
        return n > 0 && unknown == 0;
    }
};

} // namespace rcq_bench
