// Two RC QPs of one process connected to each other on the device under
// test, each with its own CQs and registered memory: the fixture of the
// operation tests. Packets go through the driver's full RC transport.
#pragma once

#include "rdma_env.hpp"

#include <rcq/rcq.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace rdma_test {

struct side {
    side(ibv_context* ctx, ibv_pd* pd, std::size_t bytes, int access, const rcq::qp_caps& caps)
        : send(ctx, 256), recv(ctx, 256), memory(bytes), region(pd, memory, access),
          qp(pd, send, recv, caps) {}

    rcq::send_cq send;
    rcq::recv_cq recv;
    std::vector<std::byte> memory;
    rcq::mr region;
    rcq::qp<rcq::state::reset> qp;
};

struct qp_pair {
    static constexpr int full_access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
                                       IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;

    explicit qp_pair(std::size_t bytes = 1 << 16, rcq::qp_caps caps = default_caps())
        : ctx(rcq::context::open(device_name())),
          gid(rcq::choose_gid(ctx, 1, gid_index())),
          port(ctx.port(1)),
          pd(ctx),
          a_side(ctx, pd, bytes, full_access, caps),
          b_side(ctx, pd, bytes, full_access, caps) {}

    static rcq::qp_caps default_caps() {
        rcq::qp_caps c;
        c.max_send_wr = 128;
        c.max_recv_wr = 128;
        c.max_inline_data = 64;
        return c;
    }

    rcq::rtr_attrs towards(std::uint32_t qpn, std::uint32_t psn) const {
        return rdma_test::towards(gid, port, qpn, psn);
    }

    /// Brings both QPs to RTS; `before_rtr` may post receives in INIT.
    template <class BeforeRtr>
    void connect(BeforeRtr before_rtr, rcq::rts_attrs rts = {}) {
        const unsigned access = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
                                IBV_ACCESS_REMOTE_ATOMIC;
        auto ai = std::move(a_side.qp).to_init({.access = access});
        auto bi = std::move(b_side.qp).to_init({.access = access});
        before_rtr(ai, bi);
        const std::uint32_t qa = ai.qp_num(), qb = bi.qp_num();
        rcq::rts_attrs ra = rts, rb = rts;
        ra.sq_psn = 100;
        rb.sq_psn = 200;
        a.emplace(std::move(ai).to_rtr(towards(qb, 200)).to_rts(ra));
        b.emplace(std::move(bi).to_rtr(towards(qa, 100)).to_rts(rb));
    }
    void connect() {
        connect([](auto&, auto&) {});
    }

    /// B's memory token, as A would get it from B's endpoint.
    rcq::remote_region b_memory() const {
        return {reinterpret_cast<std::uintptr_t>(b_side.memory.data()), b_side.region.rkey(),
                b_side.memory.size()};
    }

    /// One completion from `c` within 5 s; fails the test on timeout.
    static ibv_wc next(const rcq::cq& c, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
        rcq::poll::busy poller(nullptr);
        ibv_wc wc{};
        const int n = poller.wait(c, {&wc, 1}, rcq::deadline::after(limit));
        EXPECT_EQ(n, 1) << "no completion within " << limit.count() << " ms";
        if (n != 1) wc.status = IBV_WC_GENERAL_ERR;
        return wc;
    }

    rcq::context ctx;
    rcq::gid_entry gid;
    ibv_port_attr port;
    rcq::pd pd;
    side a_side, b_side;
    std::optional<rcq::qp<rcq::state::rts>> a, b;
};

inline void fill(std::span<std::byte> bytes, unsigned seed) {
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = std::byte(seed + i * 37 + (i >> 8));
}

} // namespace rdma_test
