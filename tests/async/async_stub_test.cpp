// Unit tests of rcq's asynchronous layer on the stub provider (no device):
// every completion token, errors, cancellation and closing, and the count
// of operator new calls per operation in steady state.
#include "async_round_trip.hpp"

#include <rcq/async.hpp>
#include <rcq/poll/blocking.hpp>
#include <rcq/poll/busy.hpp>
#include <rcq/stub/provider.hpp>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>

namespace asio = boost::asio;

// -- counting operator new ---------------------------------------------------
// g++ sees the replaced operator new inlined next to the replaced delete
// and takes malloc/free for a mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<std::uint64_t> news{0};
}
void* operator new(std::size_t n) {
    news.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
    news.fetch_add(1, std::memory_order_relaxed);
    const auto align = static_cast<std::size_t>(a);
    if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

// An async QP and CQ on the stub, which completes what is posted.
struct stub_pair {
    rcq::stub::provider stub;
    rcq::stub::adopted_cq raw_cq{stub};
    rcq::poll::busy busy{nullptr};
    asio::io_context io;
    rcq::async_cq<rcq::poll::busy> cq{io.get_executor(), busy, raw_cq.get()};
    std::optional<rcq::async_qp<rcq::state::rts>> qp;
    rcq::stub::region mem = stub.memory();

    stub_pair() {
        stub.complete_posted(true);
        stub.completions_per_poll(16);
        qp.emplace(cq, rcq::qp<rcq::state::rts>::adopt_unchecked(stub.qp()));
    }
    ~stub_pair() {
        io.run(); // lets what is queued finish
        (void)std::move(*qp).release();
    }
    ibv_sge sge(std::uint32_t bytes = 64) const { return rcq::local(mem, 0, bytes); }
};

constexpr int warm_up = 100;
constexpr int measured = 10000;

asio::awaitable<void> send_loop(rcq::async_qp<rcq::state::rts>& q, ibv_sge sge,
                                std::uint64_t& allocations, int& done) {
    for (int i = 0; i < warm_up; ++i) (void)co_await q.async_send(sge, asio::use_awaitable);
    const std::uint64_t before = news.load();
    for (int i = 0; i < measured; ++i) {
        const std::size_t n = co_await q.async_send(sge, asio::use_awaitable);
        if (n != sge.length) co_return;
        ++done;
    }
    allocations = news.load() - before;
}

TEST(AsyncStub, CoroutineSendsAllocateNothingInSteadyState) {
    stub_pair p;
    std::uint64_t allocations = ~0ull;
    int done = 0;
    asio::co_spawn(p.io, send_loop(*p.qp, p.sge(), allocations, done), asio::detached);
    p.io.run();
    EXPECT_EQ(done, measured);
    EXPECT_EQ(allocations, 0u) << "operator new calls over " << measured << " awaited SENDs";
    EXPECT_EQ(p.stub.counts().send_wrs, std::uint64_t(warm_up + measured));
    EXPECT_EQ(p.cq.outstanding(), 0u);
}

// A callback that starts the next SEND from inside the previous one's handler.
struct chain {
    rcq::async_qp<rcq::state::rts>* q;
    ibv_sge sge;
    int* left;
    std::uint64_t* before;
    void operator()(const boost::system::error_code& ec, std::size_t n) const {
        if (ec || n != sge.length) return;
        if (--*left == measured) *before = news.load();
        if (*left > 0) q->async_send(sge, *this);
    }
};

TEST(AsyncStub, CallbackSendsAllocateNothingInSteadyState) {
    stub_pair p;
    int left = warm_up + measured;
    std::uint64_t before = 0;
    p.qp->async_send(p.sge(), chain{&*p.qp, p.sge(), &left, &before});
    p.io.run();
    EXPECT_EQ(left, 0);
    EXPECT_EQ(news.load() - before, 0u) << "operator new calls over " << measured << " SENDs";
}

// The pattern of examples/async_echo.cpp and rcq_lat --op async: a receive
// and a SEND in flight together, awaited together (async_round_trip.hpp).
asio::awaitable<void> round_trips(example::async_round_trip& both, ibv_sge sge,
                                  std::uint64_t& allocations, int& done) {
    std::uint64_t before = 0;
    for (int i = 0; i < warm_up + measured; ++i) {
        if (i == warm_up) before = news.load();
        const ibv_wc wc = co_await both(sge, sge);
        if (wc.byte_len != sge.length || wc.opcode != IBV_WC_RECV) co_return;
        ++done;
    }
    allocations = news.load() - before;
}

TEST(AsyncStub, ReceiveAndSendTogetherAllocateNothingInSteadyState) {
    stub_pair p;
    example::async_round_trip both(*p.qp);
    std::uint64_t allocations = ~0ull;
    int done = 0;
    asio::co_spawn(p.io, round_trips(both, p.sge(), allocations, done), asio::detached);
    p.io.run();
    EXPECT_EQ(done, warm_up + measured);
    EXPECT_EQ(allocations, 0u) << "operator new calls over " << measured << " round trips";
    EXPECT_EQ(p.stub.counts().post_recv_calls, std::uint64_t(warm_up + measured));
}

TEST(AsyncStub, ARoundTripHasItsReceiveAndSendInFlightTogether) {
    stub_pair p;
    p.stub.completions_per_poll(0);
    example::async_round_trip both(*p.qp);
    bool got = false;
    asio::co_spawn(p.io, [&]() -> asio::awaitable<void> {
        got = (co_await both(p.sge(), p.sge())).opcode == IBV_WC_RECV;
    }, asio::detached);
    for (int i = 0; i < 10; ++i) p.io.poll_one();
    EXPECT_EQ(p.qp->outstanding_operations(), 2u);
    EXPECT_FALSE(got);
    p.stub.completions_per_poll(16);
    p.io.run();
    EXPECT_TRUE(got);
}

TEST(AsyncStub, ASecondRoundWhileOneIsInFlightIsRefused) {
    stub_pair p;
    p.stub.completions_per_poll(0);
    example::async_round_trip both(*p.qp);
    int first = 0, refused = 0;
    auto round = [&]() -> asio::awaitable<void> {
        try {
            first += (co_await both(p.sge(), p.sge())).opcode == IBV_WC_RECV;
        } catch (const std::logic_error&) {
            ++refused;
        }
    };
    asio::co_spawn(p.io, round(), asio::detached);
    for (int i = 0; i < 10; ++i) p.io.poll_one();
    asio::co_spawn(p.io, round(), asio::detached);
    for (int i = 0; i < 10; ++i) p.io.poll_one();
    EXPECT_EQ(refused, 1);
    EXPECT_EQ(p.qp->outstanding_operations(), 2u) << "the refused round posted something";
    p.stub.completions_per_poll(16);
    p.io.run();
    EXPECT_EQ(first, 1);
}

TEST(AsyncStub, ACancelledRoundTripClosesTheQpAndEndsWhenFlushed) {
    stub_pair p;
    p.stub.completions_per_poll(0);
    example::async_round_trip both(*p.qp);
    asio::cancellation_signal signal;
    boost::system::error_code ended;
    asio::co_spawn(p.io, [&]() -> asio::awaitable<void> {
        try {
            (void)co_await both(p.sge(), p.sge());
        } catch (const boost::system::system_error& e) {
            ended = e.code();
        }
    }, asio::bind_cancellation_slot(signal.slot(), asio::detached));
    for (int i = 0; i < 10; ++i) p.io.poll_one();
    signal.emit(asio::cancellation_type::partial);
    EXPECT_FALSE(p.qp->is_closed()) << "only terminal cancellation closes the QP";
    signal.emit(asio::cancellation_type::terminal);
    for (int i = 0; i < 10; ++i) p.io.poll_one();
    EXPECT_TRUE(p.qp->is_closed());
    EXPECT_FALSE(ended) << "the round ended before its operations were flushed";
    EXPECT_EQ(p.qp->outstanding_operations(), 2u);
    p.stub.completions_per_poll(16);
    p.io.run();
    EXPECT_EQ(ended, asio::error::operation_aborted);
    EXPECT_EQ(p.qp->outstanding_operations(), 0u);
}

// An allocator that counts what it hands out.
template <class T>
struct counting_allocator {
    using value_type = T;
    int* allocations;
    explicit counting_allocator(int* a) noexcept : allocations(a) {}
    template <class U>
    counting_allocator(const counting_allocator<U>& o) noexcept : allocations(o.allocations) {}
    T* allocate(std::size_t n) {
        ++*allocations;
        return std::allocator<T>().allocate(n);
    }
    void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
    template <class U>
    bool operator==(const counting_allocator<U>& o) const noexcept {
        return allocations == o.allocations;
    }
};

TEST(AsyncStub, AHandlersOwnAllocatorHoldsTheOperation) {
    stub_pair p;
    int allocations = 0, done = 0;
    for (int i = 0; i < 3; ++i)
        p.qp->async_send(p.sge(), asio::bind_allocator(counting_allocator<void>(&allocations),
                                                       [&](boost::system::error_code ec,
                                                           std::size_t) { done += !ec; }));
    EXPECT_EQ(allocations, 3) << "one operation state per operation, from the handler's allocator";
    p.io.run();
    EXPECT_EQ(done, 3);
}

// A handler bigger than the CQ's cache holds (512 bytes): its operation's
// memory comes from operator new, and goes back to it.
struct big_handler {
    std::array<unsigned char, 600> payload{};
    int* left;
    rcq::async_qp<rcq::state::rts>* q;
    ibv_sge sge;
    void operator()(const boost::system::error_code& ec, std::size_t n) {
        if (ec || n != sge.length || payload[599] != 0x5a) return;
        if (--*left > 0) q->async_send(sge, std::move(*this));
    }
};

TEST(AsyncStub, AHandlerTooBigForTheCacheStillCompletes) {
    stub_pair p;
    int left = 50;
    big_handler h{{}, &left, &*p.qp, p.sge()};
    h.payload[599] = 0x5a;
    const std::uint64_t before = news.load();
    p.qp->async_send(p.sge(), std::move(h));
    p.io.run();
    EXPECT_EQ(left, 0);
    EXPECT_GE(news.load() - before, 50u) << "an operation this big is not cached";
}

TEST(AsyncStub, AHandlerOnAStrandRunsThroughTheStrand) {
    stub_pair p;
    auto strand = asio::make_strand(p.io);
    int inside = 0, calls = 0;
    for (int i = 0; i < 4; ++i)
        p.qp->async_send(p.sge(), asio::bind_executor(strand, [&](boost::system::error_code ec,
                                                                  std::size_t) {
                             ++calls;
                             inside += !ec && strand.running_in_this_thread();
                         }));
    p.io.run();
    EXPECT_EQ(calls, 4);
    EXPECT_EQ(inside, 4);
}

TEST(AsyncStub, AHandlerOnAnotherIoContextKeepsItRunningUntilDelivered) {
    stub_pair p;
    p.stub.completions_per_poll(0);
    asio::io_context other;
    int calls = 0;
    p.qp->async_send(p.sge(), asio::bind_executor(other, [&](boost::system::error_code ec,
                                                             std::size_t) { calls += !ec; }));
    EXPECT_EQ(other.poll(), 0u);
    EXPECT_FALSE(other.stopped()) << "no outstanding work counted on the handler's io_context";
    for (int i = 0; i < 10; ++i) p.io.poll_one();
    p.stub.completions_per_poll(16);
    p.io.run();
    EXPECT_EQ(calls, 0) << "ran on the CQ's io_context instead of its own";
    EXPECT_EQ(other.poll(), 1u);
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(other.stopped()) << "the work counted for the operation was not released";
}

TEST(AsyncStub, EveryTokenKind) {
    stub_pair p;
    // use_future
    std::future<std::size_t> f = p.qp->async_send(p.sge(32), asio::use_future);
    // deferred, then a callback
    std::size_t deferred_bytes = 0;
    auto later = p.qp->async_send(p.sge(16), asio::deferred);
    EXPECT_EQ(p.stub.counts().send_wrs, 1u) << "deferred posts only when launched";
    std::move(later)([&](boost::system::error_code ec, std::size_t n) {
        EXPECT_FALSE(ec);
        deferred_bytes = n;
    });
    // a plain callback, for each kind of operation
    int called = 0;
    auto count = [&](boost::system::error_code ec, auto) {
        EXPECT_FALSE(ec) << ec.message();
        ++called;
    };
    const rcq::remote_region peer(0x7f0000000000, 0xbeef, 4096);
    const ibv_sge word = p.sge(8);
    p.qp->async_send(p.sge(), 7u, count);
    p.qp->async_write(p.sge(), peer.slice(0, 64), count);
    p.qp->async_write(p.sge(), peer.slice(0, 64), 9u, count);
    p.qp->async_read(p.sge(), peer.slice(64, 64), count);
    p.qp->async_fetch_add(word, peer.word(1), 1, count);
    p.qp->async_compare_swap(word, peer.word(2), 0, 1, count);
    p.qp->async_recv(p.sge(), count);
    EXPECT_EQ(called, 0) << "no handler runs inside its initiating call";
    p.io.run();
    EXPECT_EQ(called, 7);
    EXPECT_EQ(deferred_bytes, 16u);
    ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    EXPECT_EQ(f.get(), 32u);
}

TEST(AsyncStub, WriteLongerThanTheSliceIsRefusedBeforePosting) {
    stub_pair p;
    const rcq::remote_region peer(0x7f0000000000, 0xbeef, 4096);
    EXPECT_THROW(p.qp->async_write(p.sge(128), peer.slice(0, 64), [](auto, auto) {}), rcq::error);
    EXPECT_EQ(p.stub.counts().send_wrs, 0u);
}

asio::awaitable<void> expect_throw(rcq::async_qp<rcq::state::rts>& q, ibv_sge sge,
                                   boost::system::error_code& got) {
    try {
        (void)co_await q.async_send(sge, asio::use_awaitable);
    } catch (const boost::system::system_error& e) {
        got = e.code();
    }
}

TEST(AsyncStub, FailedCompletionIsAnErrorForEveryToken) {
    stub_pair p;
    p.stub.complete_with(IBV_WC_REM_ACCESS_ERR);
    boost::system::error_code awaited, called;
    asio::co_spawn(p.io, expect_throw(*p.qp, p.sge(), awaited), asio::detached);
    p.qp->async_send(p.sge(), [&](boost::system::error_code ec, std::size_t) { called = ec; });
    std::future<std::size_t> f = p.qp->async_send(p.sge(), asio::use_future);
    p.io.run();
    for (const auto& ec : {awaited, called}) {
        EXPECT_EQ(ec.value(), IBV_WC_REM_ACCESS_ERR);
        EXPECT_EQ(ec.category(), rcq::wc_category());
        EXPECT_EQ(ec.message(), ibv_wc_status_str(IBV_WC_REM_ACCESS_ERR));
        const std::error_code std_code = ec; // Asio's code converts to the standard one
        EXPECT_EQ(std_code.value(), IBV_WC_REM_ACCESS_ERR);
        EXPECT_EQ(std_code.message(), ibv_wc_status_str(IBV_WC_REM_ACCESS_ERR));
    }
    EXPECT_THROW(f.get(), boost::system::system_error);
}

TEST(AsyncStub, CloseAbortsOutstandingOperationsOnlyOnceFlushed) {
    stub_pair p;
    p.stub.completions_per_poll(0); // the device holds the completions back
    int aborted = 0;
    auto on_done = [&](boost::system::error_code ec, auto) {
        if (ec == asio::error::operation_aborted) ++aborted;
    };
    p.qp->async_recv(p.sge(), on_done);
    p.qp->async_recv(p.sge(), on_done);
    p.qp->async_send(p.sge(), on_done);
    for (int i = 0; i < 100; ++i) p.io.poll_one();
    p.qp->close();
    for (int i = 0; i < 100; ++i) p.io.poll_one();
    EXPECT_EQ(aborted, 0) << "an operation completed before its flush completion was polled";
    EXPECT_EQ(p.qp->outstanding_operations(), 3u);
    p.stub.completions_per_poll(16); // the flush completions arrive
    p.io.run();
    EXPECT_EQ(aborted, 3);
    EXPECT_EQ(p.qp->outstanding_operations(), 0u);
    // Started after close: aborted at once, through the io_context.
    p.qp->async_send(p.sge(), on_done);
    EXPECT_EQ(aborted, 3);
    p.io.restart();
    p.io.run();
    EXPECT_EQ(aborted, 4);
    EXPECT_EQ(p.stub.counts().send_wrs, 1u) << "nothing is posted on a closed QP";
}

TEST(AsyncStub, TerminalCancellationClosesTheQpAndDrainsIt) {
    stub_pair p;
    p.stub.completions_per_poll(0);
    asio::cancellation_signal signal;
    boost::system::error_code cancelled, other;
    p.qp->async_recv(p.sge(), asio::bind_cancellation_slot(
                                  signal.slot(), [&](boost::system::error_code ec, ibv_wc) {
                                      cancelled = ec;
                                  }));
    p.qp->async_send(p.sge(), [&](boost::system::error_code ec, std::size_t) { other = ec; });
    for (int i = 0; i < 10; ++i) p.io.poll_one();
    signal.emit(asio::cancellation_type::partial);
    EXPECT_FALSE(p.qp->is_closed()) << "partial cancellation is not supported";
    signal.emit(asio::cancellation_type::terminal);
    EXPECT_TRUE(p.qp->is_closed());
    for (int i = 0; i < 10; ++i) p.io.poll_one();
    EXPECT_FALSE(cancelled) << "completed before the QP was drained";
    p.stub.completions_per_poll(16);
    p.io.run();
    EXPECT_EQ(cancelled, asio::error::operation_aborted);
    EXPECT_EQ(other, asio::error::operation_aborted);
}

TEST(AsyncStub, FullSendQueueIsAnErrorNotAHang) {
    stub_pair p;
    p.stub.completions_per_poll(0);
    int refused = 0, posted = 0;
    for (std::size_t i = 0; i <= rcq::stub::provider::posted_capacity; ++i)
        p.qp->async_send(p.sge(), [&](boost::system::error_code ec, std::size_t) {
            if (ec == std::errc::not_enough_memory) ++refused;
            else ++posted;
        });
    EXPECT_EQ(p.cq.outstanding(), rcq::stub::provider::posted_capacity);
    p.stub.completions_per_poll(16);
    p.io.run();
    EXPECT_EQ(refused, 1);
    EXPECT_EQ(posted, int(rcq::stub::provider::posted_capacity));
}

// -- the CQ's lifetime ----------------------------------------------------------

TEST(AsyncStubDeathTest, DestroyingTheCqBeforeAnAsyncQpUsingItStopsWithTheMistakeNamed) {
    EXPECT_DEATH(
        {
            rcq::stub::provider stub;
            rcq::stub::adopted_cq raw_cq{stub};
            rcq::poll::busy busy{nullptr};
            asio::io_context io;
            std::optional<rcq::async_cq<rcq::poll::busy>> cq(std::in_place, io.get_executor(), busy,
                                                             raw_cq.get());
            rcq::async_qp<rcq::state::rts> q(*cq, rcq::qp<rcq::state::rts>::adopt_unchecked(stub.qp()));
            cq.reset();
        },
        "rcq::async_cq destroyed while an async_qp still uses it: destroy the async_qp objects first");
}

TEST(AsyncStub, APollQueuedWhenTheCqIsDestroyedDoesNothing) {
    rcq::stub::provider stub;
    stub.complete_posted(true);
    stub.completions_per_poll(0); // the device holds the completion back
    rcq::stub::adopted_cq raw_cq{stub};
    rcq::poll::busy busy{nullptr};
    asio::io_context io;
    using async_cq = rcq::async_cq<rcq::poll::busy>;
    alignas(async_cq) unsigned char storage[sizeof(async_cq)];
    auto* cq = ::new (storage) async_cq(io.get_executor(), busy, raw_cq.get());
    std::optional<rcq::async_qp<rcq::state::rts>> q(
        std::in_place, *cq, rcq::qp<rcq::state::rts>::adopt_unchecked(stub.qp()));
    int calls = 0;
    q->async_send(rcq::local(stub.memory(), 0, 64),
                  [&](boost::system::error_code, std::size_t) { ++calls; });
    for (int i = 0; i < 5; ++i) ASSERT_EQ(io.poll_one(), 1u) << "the busy driver keeps one poll queued";
    // The QP's destructor drains it outside the io_context: the handler is
    // queued, and so is the driver's next poll. (The stub's QP is given
    // back first: the provider owns it.)
    stub.completions_per_poll(16);
    (void)std::move(*q).release();
    q.reset();
    EXPECT_EQ(calls, 0);
    cq->~async_cq();
    std::memset(storage, 0xff, sizeof storage); // a poll reaching the CQ now would crash
    io.run();
    EXPECT_EQ(calls, 1);
}

// The blocking driver's descriptor wait, pending when the CQ is destroyed
// (the stub's completion channel is never signaled): the destructor's
// release of the descriptor aborts the wait, whose handler then must not
// write into the destroyed object.
TEST(AsyncStub, AWaitPendingWhenTheCqIsDestroyedEndsWithoutTouchingIt) {
    rcq::stub::provider stub;
    stub.complete_posted(true);
    stub.completions_per_poll(0);
    rcq::stub::adopted_cq raw_cq{stub};
    rcq::poll::blocking blocking{stub.context()};
    asio::io_context io;
    using async_cq = rcq::async_cq<rcq::poll::blocking>;
    alignas(async_cq) unsigned char storage[sizeof(async_cq)];
    auto* cq = ::new (storage) async_cq(io.get_executor(), blocking, raw_cq.get());
    std::optional<rcq::async_qp<rcq::state::rts>> q(
        std::in_place, *cq, rcq::qp<rcq::state::rts>::adopt_unchecked(stub.qp()));
    int calls = 0;
    q->async_send(rcq::local(stub.memory(), 0, 64),
                  [&](boost::system::error_code, std::size_t) { ++calls; });
    EXPECT_EQ(io.poll(), 0u) << "the driver waits on the descriptor, nothing is ready";
    stub.completions_per_poll(16);
    (void)std::move(*q).release();
    q.reset(); // drains: the handler is queued
    cq->~async_cq();
    std::memset(storage, 0xff, sizeof storage);
    io.run(); // the aborted wait, then the handler
    EXPECT_EQ(calls, 1);
    bool untouched = true;
    for (unsigned char byte : storage) untouched = untouched && byte == 0xff;
    EXPECT_TRUE(untouched) << "a handler wrote into the destroyed async_cq";
}

TEST(AsyncStub, WorkCompletionCategory) {
    const boost::system::error_code ec = rcq::make_wc_error(IBV_WC_RETRY_EXC_ERR);
    EXPECT_EQ(ec.message(), ibv_wc_status_str(IBV_WC_RETRY_EXC_ERR));
    EXPECT_STREQ(ec.category().name(), "rcq.work_completion");
    EXPECT_FALSE(rcq::make_wc_error(IBV_WC_SUCCESS));
}

} // namespace
