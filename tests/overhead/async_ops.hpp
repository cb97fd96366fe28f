// tests/overhead/async_ops.hpp - one SEND and its completion delivered to the
// code waiting for it, three ways, for the `overhead` test to count: raw
// verbs with a hand-written dispatch (wr_id points to a waiting operation
// whose function is called), rcq::async_qp awaited by a C++20 coroutine, and
// rcq::async_qp with a plain callback that starts the next SEND.
//
// Each variant has `bool run(std::uint64_t n)`: n SENDs, each posted, its
// completion polled and delivered, one after the other. The stub provider
// completes what is posted (complete_posted), so every poll finds exactly
// the one completion; all three hand it the same number of requests and
// polls, which the probe checks.
#pragma once

#include <rcq/async.hpp>
#include <rcq/poll/busy.hpp>
#include <rcq/stub/provider.hpp>
#include <rcq/wr.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <infiniband/verbs.h>

#include <cstdint>
#include <optional>

namespace rcq_overhead {

inline constexpr std::uint32_t async_message = 64;

/// The hand-written baseline: what a program without a framework writes to
/// deliver a completion to the operation that waits for it.
struct raw_send_dispatch {
    struct waiting {
        void (*complete)(waiting*, const ibv_wc&);
        std::uint64_t done = 0;
    };
    static void on_complete(waiting* w, const ibv_wc& wc) {
        if (wc.status == IBV_WC_SUCCESS) ++w->done;
    }

    ibv_qp* qp;
    ibv_cq* cq;
    rcq::stub::region mem;
    waiting op{&on_complete};

    explicit raw_send_dispatch(rcq::stub::provider& p) : qp(p.qp()), cq(p.cq()), mem(p.memory()) {}

    [[gnu::noinline]] bool run(std::uint64_t n) {
        for (std::uint64_t i = 0; i < n; ++i) {
            ibv_sge sge{reinterpret_cast<std::uintptr_t>(mem.data), async_message, mem.lkey_value};
            ibv_send_wr wr{};
            wr.wr_id = reinterpret_cast<std::uintptr_t>(&op);
            wr.sg_list = &sge;
            wr.num_sge = 1;
            wr.opcode = IBV_WR_SEND;
            wr.send_flags = IBV_SEND_SIGNALED;
            ibv_send_wr* bad;
            if (ibv_post_send(qp, &wr, &bad) != 0) return false;
            ibv_wc wc;
            int got;
            while ((got = ibv_poll_cq(cq, 1, &wc)) == 0) {
            }
            if (got < 0) return false;
            auto* w = reinterpret_cast<waiting*>(static_cast<std::uintptr_t>(wc.wr_id));
            w->complete(w, wc);
        }
        return op.done == n;
    }
};

/// What the async variants share: an io_context, the stub's CQ driven by
/// poll::busy, the stub's QP as an async_qp.
struct async_stub {
    rcq::stub::adopted_cq raw_cq;
    rcq::poll::busy busy{nullptr};
    boost::asio::io_context io{1};
    rcq::async_cq<rcq::poll::busy> cq;
    std::optional<rcq::async_qp<rcq::state::rts>> qp;
    ibv_sge sge;

    explicit async_stub(rcq::stub::provider& p)
        : raw_cq(p), cq(io.get_executor(), busy, raw_cq.get()),
          sge(rcq::local(p.memory(), 0, async_message)) {
        qp.emplace(cq, rcq::qp<rcq::state::rts>::adopt_unchecked(p.qp()));
    }
    ~async_stub() { (void)std::move(*qp).release(); }
};

/// co_await q.async_send(sge, use_awaitable), n times.
struct rcq_send_awaited : async_stub {
    using async_stub::async_stub;

    static boost::asio::awaitable<void> loop(rcq_send_awaited& self, std::uint64_t n,
                                             std::uint64_t& done) {
        for (std::uint64_t i = 0; i < n; ++i) {
            const std::size_t bytes = co_await self.qp->async_send(self.sge, boost::asio::use_awaitable);
            done += bytes == async_message;
        }
    }

    [[gnu::noinline]] bool run(std::uint64_t n) {
        std::uint64_t done = 0;
        boost::asio::co_spawn(io, loop(*this, n, done), boost::asio::detached);
        io.restart();
        io.run();
        return done == n;
    }
};

/// q.async_send(sge, callback), the callback starting the next one.
struct rcq_send_callback : async_stub {
    using async_stub::async_stub;

    struct next {
        rcq_send_callback* self;
        std::uint64_t* left;
        void operator()(const boost::system::error_code& ec, std::size_t bytes) const {
            if (ec || bytes != async_message) return;
            if (--*left != 0) self->qp->async_send(self->sge, *this);
        }
    };

    [[gnu::noinline]] bool run(std::uint64_t n) {
        std::uint64_t left = n;
        qp->async_send(sge, next{this, &left});
        io.restart();
        io.run();
        return left == 0;
    }
};

} // namespace rcq_overhead
