// rcq's asynchronous layer on the device: two QPs of one process on one
// shared async CQ, driven by one io_context, with each poll policy and each
// kind of completion token; every operation; a failed completion reaching
// the awaiting coroutine; closing and cancelling drain before aborting.
#include "rdma_env.hpp"

#include <rcq/async.hpp>
#include <rcq/rcq.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <future>
#include <optional>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using rts_qp = rcq::async_qp<rcq::state::rts>;

constexpr int full_access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
                            IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;

// Two connected QPs whose completions all go to one async CQ.
template <class Poll>
struct async_pair {
    rcq::context ctx{rcq::context::open(rdma_test::device_name())};
    rcq::gid_entry gid{rcq::choose_gid(ctx, 1, rdma_test::gid_index())};
    ibv_port_attr port{ctx.port(1)};
    rcq::pd pd{ctx};
    std::vector<std::byte> mem_a = std::vector<std::byte>(1 << 16),
                           mem_b = std::vector<std::byte>(1 << 16);
    rcq::mr mr_a{pd, mem_a, full_access}, mr_b{pd, mem_b, full_access};
    asio::io_context io;
    rcq::async_cq<Poll> cq{io.get_executor(), ctx, 512};
    std::optional<rts_qp> a, b;

    async_pair() {
        rcq::qp_caps caps;
        caps.max_send_wr = 128;
        caps.max_recv_wr = 128;
        rcq::qp<rcq::state::reset> qa(pd, cq.completion_queue(), caps),
            qb(pd, cq.completion_queue(), caps);
        const unsigned access =
            IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
        auto ia = std::move(qa).to_init({.access = access});
        auto ib = std::move(qb).to_init({.access = access});
        const std::uint32_t na = ia.qp_num(), nb = ib.qp_num();
        a.emplace(cq, std::move(ia).to_rtr(rdma_test::towards(gid, port, nb, 200)).to_rts({.sq_psn = 100}));
        b.emplace(cq, std::move(ib).to_rtr(rdma_test::towards(gid, port, na, 100)).to_rts({.sq_psn = 200}));
    }

    // Runs the io_context until it has nothing left to do, for at most `limit`.
    void run(std::chrono::milliseconds limit = 5000ms) {
        io.restart();
        io.run_for(limit);
        EXPECT_EQ(cq.outstanding(), 0u) << "operations still outstanding after " << limit.count() << " ms";
    }

    ibv_sge at_a(std::size_t offset, std::uint32_t n) const { return rcq::local(mr_a, offset, n); }
    ibv_sge at_b(std::size_t offset, std::uint32_t n) const { return rcq::local(mr_b, offset, n); }
    rcq::remote_region b_memory() const {
        return {reinterpret_cast<std::uintptr_t>(mem_b.data()), mr_b.rkey(), mem_b.size()};
    }
};

void fill(std::span<std::byte> bytes, unsigned seed) {
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = std::byte(seed + i * 31 + (i >> 8));
}

template <class Poll>
class AsyncPolicies : public ::testing::Test {};
using policies = ::testing::Types<rcq::poll::busy, rcq::poll::blocking, rcq::poll::adaptive<64>>;
TYPED_TEST_SUITE(AsyncPolicies, policies);

constexpr int rounds = 50;
constexpr std::uint32_t message = 4096;

// Echo with coroutines: B receives and sends back, A sends and receives.
// A receive must be posted before the peer's SEND arrives (else the peer is
// turned away, receiver not ready, and retries later), so each side posts
// its next receive together with its send, in one parallel group.
asio::awaitable<void> echo_server(rts_qp& q, ibv_sge in, int& served) {
    using asio::experimental::make_parallel_group;
    ibv_wc wc = co_await q.async_recv(in, asio::use_awaitable);
    for (int i = 0; i < rounds; ++i) {
        ibv_sge back = in;
        back.length = wc.byte_len;
        if (i + 1 == rounds) {
            co_await q.async_send(back, asio::use_awaitable);
        } else {
            // The echo leaves from a copy: the next message lands in `in`.
            std::memcpy(reinterpret_cast<void*>(back.addr + in.length),
                        reinterpret_cast<const void*>(back.addr), back.length);
            back.addr += in.length;
            auto [order, recv_ec, next, send_ec, sent] =
                co_await make_parallel_group(q.async_recv(in, asio::deferred),
                                             q.async_send(back, asio::deferred))
                    .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
            if (recv_ec || send_ec) co_return;
            wc = next;
        }
        ++served;
    }
}
asio::awaitable<void> echo_client(rts_qp& q, ibv_sge out, ibv_sge in, int& echoed) {
    using asio::experimental::make_parallel_group;
    for (int i = 0; i < rounds; ++i) {
        auto [order, recv_ec, wc, send_ec, sent] =
            co_await make_parallel_group(q.async_recv(in, asio::deferred),
                                         q.async_send(out, asio::deferred))
                .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
        if (!recv_ec && !send_ec && sent == out.length && wc.byte_len == out.length) ++echoed;
    }
}

TYPED_TEST(AsyncPolicies, EchoWithCoroutines) {
    async_pair<TypeParam> p;
    fill(std::span(p.mem_a).first(message), 3);
    int served = 0, echoed = 0;
    asio::co_spawn(p.io, echo_server(*p.b, p.at_b(0, message), served), asio::detached);
    // (the server's echo copy lives at B's offset `message`)
    asio::co_spawn(p.io, echo_client(*p.a, p.at_a(0, message), p.at_a(message, message), echoed),
                   asio::detached);
    p.run();
    EXPECT_EQ(served, rounds);
    EXPECT_EQ(echoed, rounds);
    EXPECT_EQ(std::memcmp(p.mem_a.data(), p.mem_a.data() + message, message), 0);
}

TYPED_TEST(AsyncPolicies, EchoWithCallbacks) {
    async_pair<TypeParam> p;
    fill(std::span(p.mem_a).first(message), 5);
    int left = rounds;
    const ibv_sge out = p.at_a(0, message), in = p.at_a(message, message), server = p.at_b(0, message);
    std::function<void()> round = [&] {
        p.b->async_recv(server, [&](boost::system::error_code ec, ibv_wc wc) {
            ASSERT_FALSE(ec) << ec.message();
            ibv_sge back = server;
            back.length = wc.byte_len;
            p.b->async_send(back, [](boost::system::error_code e, std::size_t) { ASSERT_FALSE(e); });
        });
        p.a->async_recv(in, [&](boost::system::error_code ec, ibv_wc) {
            ASSERT_FALSE(ec) << ec.message();
            if (--left > 0) round();
        });
        p.a->async_send(out, [](boost::system::error_code ec, std::size_t) { ASSERT_FALSE(ec); });
    };
    round();
    p.run();
    EXPECT_EQ(left, 0);
    EXPECT_EQ(std::memcmp(p.mem_a.data(), p.mem_a.data() + message, message), 0);
}

TYPED_TEST(AsyncPolicies, SendAndReceiveWithFutures) {
    async_pair<TypeParam> p;
    fill(std::span(p.mem_a).first(message), 7);
    std::future<ibv_wc> got = p.b->async_recv(p.at_b(0, message), asio::use_future);
    std::future<std::size_t> sent = p.a->async_send(p.at_a(0, message), 0xfeedu, asio::use_future);
    p.run();
    ASSERT_EQ(got.wait_for(0s), std::future_status::ready);
    const ibv_wc wc = got.get();
    EXPECT_EQ(sent.get(), message);
    EXPECT_EQ(wc.byte_len, message);
    ASSERT_TRUE(wc.wc_flags & IBV_WC_WITH_IMM);
    EXPECT_EQ(ntohl(wc.imm_data), 0xfeedu);
    EXPECT_EQ(std::memcmp(p.mem_a.data(), p.mem_b.data(), message), 0);
}

// Every one-sided operation, awaited in turn.
asio::awaitable<void> one_sided(async_pair<rcq::poll::blocking>& p, int& checks) {
    const rcq::remote_region peer = p.b_memory();
    fill(std::span(p.mem_a).first(2048), 11);
    // WRITE, then READ it back elsewhere.
    std::size_t n = co_await p.a->async_write(p.at_a(0, 2048), peer.slice(4096, 2048), asio::use_awaitable);
    checks += n == 2048 && std::memcmp(p.mem_a.data(), p.mem_b.data() + 4096, 2048) == 0;
    n = co_await p.a->async_read(p.at_a(8192, 2048), peer.slice(4096, 2048), asio::use_awaitable);
    checks += n == 2048 && std::memcmp(p.mem_a.data(), p.mem_a.data() + 8192, 2048) == 0;
    // WRITE with immediate data consumes a receive at B, posted first.
    auto [order, recv_ec, wc, write_ec, written] =
        co_await asio::experimental::make_parallel_group(
            p.b->async_recv(p.at_b(0, 16), asio::deferred),
            p.a->async_write(p.at_a(0, 64), peer.slice(12288, 64), 77u, asio::deferred))
            .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
    checks += !recv_ec && !write_ec && written == 64 && wc.opcode == IBV_WC_RECV_RDMA_WITH_IMM &&
              ntohl(wc.imm_data) == 77u &&
              std::memcmp(p.mem_a.data(), p.mem_b.data() + 12288, 64) == 0;
    // Atomics on word 2048 (offset 16 KiB).
    std::memset(p.mem_b.data() + 16384, 0, 8);
    std::uint64_t old = co_await p.a->async_fetch_add(p.at_a(16384, 8), peer.word(2048), 5, asio::use_awaitable);
    checks += old == 0;
    old = co_await p.a->async_fetch_add(p.at_a(16384, 8), peer.word(2048), 1, asio::use_awaitable);
    checks += old == 5;
    old = co_await p.a->async_compare_swap(p.at_a(16384, 8), peer.word(2048), 6, 100, asio::use_awaitable);
    checks += old == 6;
    old = co_await p.a->async_compare_swap(p.at_a(16384, 8), peer.word(2048), 6, 200, asio::use_awaitable);
    checks += old == 100; // no swap: the word was not 6
    std::uint64_t word = 0;
    std::memcpy(&word, p.mem_b.data() + 16384, 8);
    checks += word == 100;
}

TEST(Async, EveryOneSidedOperation) {
    async_pair<rcq::poll::blocking> p;
    int checks = 0;
    asio::co_spawn(p.io, one_sided(p, checks), [](std::exception_ptr e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            ADD_FAILURE() << x.what();
        }
    });
    p.run();
    EXPECT_EQ(checks, 8);
}

asio::awaitable<void> write_with_wrong_rkey(async_pair<rcq::poll::blocking>& p,
                                            boost::system::error_code& got, bool& returned) {
    const rcq::remote_region peer = p.b_memory();
    const rcq::remote_region wrong(peer.addr(), peer.rkey() ^ 0x5a5a, peer.length());
    try {
        (void)co_await p.a->async_write(p.at_a(0, 256), wrong.slice(0, 256), asio::use_awaitable);
        returned = true;
    } catch (const boost::system::system_error& e) {
        got = e.code();
    }
}

TEST(Async, ErrorCompletionReachesTheAwaitingCoroutine) {
    async_pair<rcq::poll::blocking> p;
    boost::system::error_code got;
    bool returned = false;
    asio::co_spawn(p.io, write_with_wrong_rkey(p, got, returned), asio::detached);
    p.run();
    EXPECT_FALSE(returned) << "a failed WRITE completed as a success";
    EXPECT_EQ(got.category(), rcq::wc_category());
    EXPECT_EQ(got.value(), IBV_WC_REM_ACCESS_ERR) << got.message();
    EXPECT_EQ(got.message(), ibv_wc_status_str(IBV_WC_REM_ACCESS_ERR));
}

TEST(Async, CloseDrainsOutstandingReceivesBeforeAborting) {
    async_pair<rcq::poll::blocking> p;
    int aborted = 0, other = 0;
    for (int i = 0; i < 8; ++i)
        p.b->async_recv(p.at_b(i * 64, 64), [&](boost::system::error_code ec, ibv_wc) {
            (ec == asio::error::operation_aborted ? aborted : other)++;
        });
    p.io.run_for(50ms); // nothing arrives
    EXPECT_EQ(p.b->outstanding_operations(), 8u);
    p.b->close();
    EXPECT_EQ(aborted + other, 0) << "aborted inside close(), before the flush completions";
    p.run();
    EXPECT_EQ(aborted, 8);
    EXPECT_EQ(other, 0);
    EXPECT_EQ(p.b->outstanding_operations(), 0u);
    // The QP is in ERROR now; a new operation is refused at once.
    std::future<ibv_wc> late = p.b->async_recv(p.at_b(0, 64), asio::use_future);
    p.run();
    EXPECT_THROW(late.get(), boost::system::system_error);
}

// A receive raced against a timer: the timer wins, the receive is cancelled
// (terminal), which moves B to ERROR; the receive ends after its flush.
asio::awaitable<void> receive_or_timeout(async_pair<rcq::poll::busy>& p, int& outcome) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(p.io, 100ms);
    auto first = co_await (p.b->async_recv(p.at_b(0, 64), asio::use_awaitable) ||
                           timer.async_wait(asio::use_awaitable));
    outcome = static_cast<int>(first.index());
}

TEST(Async, TerminalCancellationOfAReceiveDrainsTheQp) {
    async_pair<rcq::poll::busy> p;
    // A second receive, not cancelled itself, is flushed with the QP.
    boost::system::error_code second;
    p.b->async_recv(p.at_b(64, 64), [&](boost::system::error_code ec, ibv_wc) { second = ec; });
    int outcome = -1;
    asio::co_spawn(p.io, receive_or_timeout(p, outcome), asio::detached);
    p.run();
    EXPECT_EQ(outcome, 1) << "the timer should have won";
    EXPECT_TRUE(p.b->is_closed());
    EXPECT_EQ(second, asio::error::operation_aborted);
    EXPECT_EQ(p.b->outstanding_operations(), 0u);
}

TEST(Async, PerOperationCancellationSignal) {
    async_pair<rcq::poll::blocking> p;
    asio::cancellation_signal signal;
    boost::system::error_code got;
    p.b->async_recv(p.at_b(0, 64), asio::bind_cancellation_slot(
                                         signal.slot(), [&](boost::system::error_code ec, ibv_wc) {
                                             got = ec;
                                         }));
    p.io.run_for(20ms);
    signal.emit(asio::cancellation_type::terminal);
    EXPECT_FALSE(got);
    p.run();
    EXPECT_EQ(got, asio::error::operation_aborted);
}

TEST(Async, DestroyingAnAsyncQpWithOutstandingOperationsRunsTheirHandlers) {
    async_pair<rcq::poll::blocking> p;
    int aborted = 0;
    for (int i = 0; i < 4; ++i)
        p.b->async_recv(p.at_b(i * 64, 64), [&](boost::system::error_code ec, ibv_wc) {
            aborted += ec == asio::error::operation_aborted;
        });
    p.b.reset();
    p.run();
    EXPECT_EQ(aborted, 4);
}

} // namespace
