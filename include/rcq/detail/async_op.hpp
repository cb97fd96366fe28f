// rcq/detail/async_op.hpp - the state of one asynchronous operation, which a
// work request's wr_id points to, and the bookkeeping its QP and CQ share.
#pragma once

#include <rcq/config.hpp>

#include <rcq/async/error.hpp>
#include <rcq/config.hpp>
#include <rcq/detail/asio_version.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/system/error_code.hpp>

#include <infiniband/verbs.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

namespace rcq::detail {

/// The executor every asynchronous QP and CQ runs on: an io_context's.
using async_executor = boost::asio::io_context::executor_type;

struct async_qp_core;

/// Memory for the operations whose handlers name no allocator of their own:
/// a finished operation's block goes on a free list of its size class
/// (64-byte steps up to 512 bytes), and the next operation of that class
/// takes it, so steady state allocates nothing and needs no thread-local
/// lookup (Asio's recycling allocator needs two per operation). Bigger or
/// over-aligned operations use operator new. Single-threaded, as the CQ core
/// that owns it; the blocks go back to the heap with it.
class op_cache {
public:
    static constexpr std::size_t granule = 64;
    static constexpr std::size_t classes = 8;

    /// Whether blocks of `size` bytes aligned to `align` come from the cache.
    static constexpr bool holds(std::size_t size, std::size_t align) noexcept {
        return size != 0 && size <= granule * classes &&
               align <= __STDCPP_DEFAULT_NEW_ALIGNMENT__;
    }

    op_cache() = default;
    op_cache(const op_cache&) = delete;
    op_cache& operator=(const op_cache&) = delete;
    ~op_cache() {
        for (block*& head : free_)
            while (head != nullptr) ::operator delete(std::exchange(head, head->next));
    }

    /// Precondition: holds(size, alignment).
    void* allocate(std::size_t size) {
        block*& head = free_[(size - 1) / granule];
        if (block* b = head) [[likely]] {
            head = b->next;
            return b;
        }
        return ::operator new(((size - 1) / granule + 1) * granule);
    }
    void deallocate(void* p, std::size_t size) noexcept {
        block*& head = free_[(size - 1) / granule];
        head = ::new (p) block{head};
    }

private:
    struct block {
        block* next;
    };
    block* free_[classes] = {};
};

/// The allocator of an operation whose handler has none: the CQ's op_cache.
template <class T>
class op_allocator {
public:
    using value_type = T;

    explicit op_allocator(op_cache& c) noexcept : cache_(&c) {}
    template <class U>
    op_allocator(const op_allocator<U>& other) noexcept : cache_(other.cache_) {}

    T* allocate(std::size_t n) {
        if (op_cache::holds(n * sizeof(T), alignof(T))) [[likely]]
            return static_cast<T*>(cache_->allocate(n * sizeof(T)));
        return std::allocator<T>().allocate(n);
    }
    void deallocate(T* p, std::size_t n) noexcept {
        if (op_cache::holds(n * sizeof(T), alignof(T))) [[likely]]
            cache_->deallocate(p, n * sizeof(T));
        else
            std::allocator<T>().deallocate(p, n);
    }

    template <class U>
    bool operator==(const op_allocator<U>& other) const noexcept {
        return cache_ == other.cache_;
    }

private:
    template <class>
    friend class op_allocator;
    op_cache* cache_;
};

/// Where a completion is handed to its operation, which decides how its
/// handler may be invoked.
enum class completion_site : unsigned char {
    /// By the CQ's driver, a handler of the io_context's running on its
    /// thread: a handler whose executor is that io_context's runs there and
    /// then.
    driver,
    /// Anywhere else (async_cq::deliver, a destructor's drain): the handler
    /// runs there and then only if this thread is running the io_context.
    elsewhere,
    /// Inside the operation's initiating function: the handler is posted.
    initiation,
};

/// What a CQ driver needs to know of the operations it completes: how many
/// are outstanding (the driver runs while any is) and how to start driving.
/// Single-threaded: touched only from the io_context's thread.
struct async_cq_core {
    /// Starts polling or waiting, once the first operation is outstanding.
    using kick_fn = void (*)(async_cq_core&) noexcept;

    async_cq_core(async_executor ex, ibv_cq* c, kick_fn k, void* d) noexcept
        : executor(ex), cq(c), kick(k), driver(d) {}

    async_executor executor;
    ibv_cq* cq;
    kick_fn kick;
    void* driver; // the async_cq that kick() starts
    std::size_t outstanding = 0;
    std::size_t qps = 0;  // async_qp objects using it
    bool driving = false; // a poll is posted or a wait is pending
    op_cache ops;         // memory of operations whose handlers have no allocator

    // An operation was posted.
    void started() noexcept {
        ++outstanding;
        if (!driving) {
            driving = true;
            kick(*this);
        }
    }

    // Polls the CQ dry, completing each operation found. Returns how many
    // completions were taken, or a negative value when polling failed.
    inline int drain(completion_site site) noexcept;
};

/// One operation in flight: its work request's wr_id is this object's
/// address, so a completion finds it in constant time, whichever QP on a
/// shared CQ it belongs to.
struct async_op {
    /// Completes the operation: frees it, then invokes its handler with `ec`
    /// and the result taken from `wc`, as `site` allows.
    using complete_fn = void (*)(async_op*, const ibv_wc&, const boost::system::error_code&,
                                 completion_site site);

    complete_fn complete;
    async_qp_core* owner;
    std::uint64_t aux; // the byte count, or the address of an atomic's result

    std::uint64_t wr_id() const noexcept { return reinterpret_cast<std::uintptr_t>(this); }
    static async_op* of(std::uint64_t wr_id) noexcept {
        return reinterpret_cast<async_op*>(static_cast<std::uintptr_t>(wr_id));
    }
};

/// What an asynchronous QP shares with its operations: the CQ driver, how
/// many of its operations are outstanding, whether it was closed, and how to
/// close it (from a cancellation).
struct async_qp_core {
    using close_fn = void (*)(async_qp_core&) noexcept;

    async_cq_core* cq;
    close_fn close;
    std::size_t outstanding = 0;
    bool closed = false;
};

/// Hands one work completion of an asynchronous operation to it.
RCQ_ALWAYS_INLINE void deliver(const ibv_wc& wc, completion_site site) noexcept {
    async_op* op = async_op::of(wc.wr_id);
    async_qp_core& qp = *op->owner;
    --qp.outstanding;
    --qp.cq->outstanding;
    boost::system::error_code ec;
    if (wc.status != IBV_WC_SUCCESS) [[unlikely]] {
        if (qp.closed && wc.status == IBV_WC_WR_FLUSH_ERR)
            ec = boost::asio::error::operation_aborted;
        else
            ec = make_wc_error(wc.status);
    }
    op->complete(op, wc, ec, site);
}

// Inlined into each caller: the driver's loop then keeps its frame across
// its polls instead of building one per poll.
RCQ_ALWAYS_INLINE int async_cq_core::drain(completion_site site) noexcept {
    constexpr int batch = 16;
    ibv_wc wcs[batch];
    int total = 0;
    for (;;) {
        const int n = ibv_poll_cq(cq, batch, wcs);
        if (n < 0) [[unlikely]] return n;
        for (int i = 0; i < n; ++i) deliver(wcs[i], site);
        total += n;
        if (n < batch) return total;
    }
}

// -- what each kind of operation completes with ------------------------------

/// A receive completes with its work completion (byte_len, imm_data, wc_flags).
struct recv_result {
    using type = ibv_wc;
    static type get(const ibv_wc& wc, std::uint64_t) noexcept { return wc; }
};
/// SENDs, WRITEs and READs complete with the bytes of their element.
struct bytes_result {
    using type = std::size_t;
    static type get(const ibv_wc&, std::uint64_t bytes) noexcept { return bytes; }
};
/// Atomics complete with the remote word's old value, which the device wrote
/// into the 8 bytes of their local element.
struct old_value_result {
    using type = std::uint64_t;
    static type get(const ibv_wc& wc, std::uint64_t address) noexcept {
        std::uint64_t old = 0;
        if (wc.status == IBV_WC_SUCCESS)
            std::memcpy(&old, reinterpret_cast<const void*>(static_cast<std::uintptr_t>(address)), 8);
        return old;
    }
};

/// Terminal cancellation of one operation closes its QP: verbs cannot
/// withdraw one posted work request, only flush them all.
struct async_cancel {
    async_qp_core* qp;
    void operator()(boost::asio::cancellation_type type) const noexcept {
        if ((type & boost::asio::cancellation_type::terminal) != boost::asio::cancellation_type::none)
            qp->close(*qp);
    }
};

/// The handler's allocator, the CQ's op_cache when it has none, so that
/// steady state allocates nothing.
template <class Handler>
using async_handler_allocator = boost::asio::associated_allocator_t<Handler, op_allocator<void>>;

/// Whether `ex` is the io_context executor `io` (directly, or inside a
/// type-erased executor such as any_io_executor, which coroutines use).
template <class Executor>
bool is_io_executor(const Executor& ex, const async_executor& io) noexcept {
    if constexpr (std::is_same_v<Executor, async_executor>) {
        return ex == io;
    } else if constexpr (requires { ex.template target<async_executor>(); }) {
        const async_executor* target = ex.template target<async_executor>();
        return target != nullptr && *target == io;
    } else {
        return false;
    }
}

/// One operation with its handler, allocated with the handler's allocator.
///
/// Its handler runs as Asio's own operations run theirs: when the handler's
/// executor is the io_context that delivers the completion, and the
/// completion is found on that io_context's thread, it is invoked there and
/// then (the io_context is kept running by the CQ's pending poll or wait, so
/// no outstanding work is counted for it); otherwise outstanding work is
/// counted on the handler's executor from initiation, and the handler is
/// dispatched to it.
template <class Result, class Handler>
class async_op_impl : public async_op {
    using allocator_type = typename std::allocator_traits<
        async_handler_allocator<Handler>>::template rebind_alloc<async_op_impl>;
    using handler_executor = boost::asio::associated_executor_t<Handler, async_executor>;
    using work_type = std::decay_t<decltype(boost::asio::prefer(
        std::declval<const handler_executor&>(), boost::asio::execution::outstanding_work.tracked))>;

public:
    /// A new operation owning `handler`.
    static async_op_impl* make(Handler&& handler, async_qp_core* owner, std::uint64_t aux) {
        allocator_type alloc(
            boost::asio::get_associated_allocator(handler, op_allocator<void>(owner->cq->ops)));
        void* memory = std::allocator_traits<allocator_type>::allocate(alloc, 1);
        return ::new (memory) async_op_impl(std::move(handler), owner, aux);
    }

    /// Connects the handler's cancellation slot, if it has one.
    void watch_cancellation() noexcept {
        auto slot = boost::asio::get_associated_cancellation_slot(handler_);
        if (slot.is_connected()) slot.template emplace<async_cancel>(async_cancel{owner});
    }

private:
    async_op_impl(Handler&& handler, async_qp_core* owner, std::uint64_t aux)
        : async_op{&finish, owner, aux}, handler_(std::move(handler)) {
        const async_executor& io = owner->cq->executor;
        const handler_executor ex = boost::asio::get_associated_executor(handler_, io);
        if (!is_io_executor(ex, io)) [[unlikely]]
            work_.emplace(boost::asio::prefer(ex, boost::asio::execution::outstanding_work.tracked));
    }

    // Destroys the operation and gives its memory back, before the handler
    // runs, so that the handler may start the next operation in the same
    // block.
    static void release(async_op_impl* self, allocator_type& alloc) noexcept {
        self->~async_op_impl();
        std::allocator_traits<allocator_type>::deallocate(alloc, self, 1);
    }

    static void finish(async_op* base, const ibv_wc& wc, const boost::system::error_code& ec,
                       completion_site site) {
        auto* self = static_cast<async_op_impl*>(base);
        async_cq_core& cq = *self->owner->cq;
        const typename Result::type result = Result::get(wc, self->aux);
        Handler handler(std::move(self->handler_));
        auto slot = boost::asio::get_associated_cancellation_slot(handler);
        if (slot.is_connected()) slot.clear();
        allocator_type alloc(
            boost::asio::get_associated_allocator(handler, op_allocator<void>(cq.ops)));
        if (self->work_) [[unlikely]] {
            // Another executor: the work counted since initiation ends once
            // the handler is dispatched or posted to it.
            const work_type work(std::move(*self->work_));
            release(self, alloc);
            const handler_executor ex = boost::asio::get_associated_executor(handler, cq.executor);
            if (site == completion_site::initiation)
                boost::asio::post(ex, boost::asio::append(std::move(handler), ec, result));
            else
                boost::asio::dispatch(ex, boost::asio::append(std::move(handler), ec, result));
            return;
        }
        release(self, alloc);
        // The handler's executor is the io_context's own.
        if (site == completion_site::driver ||
            (site == completion_site::elsewhere && cq.executor.running_in_this_thread()))
            [[likely]] {
            std::move(handler)(ec, result);
        } else if (site == completion_site::initiation) {
            const handler_executor ex = boost::asio::get_associated_executor(handler, cq.executor);
            boost::asio::post(ex, boost::asio::append(std::move(handler), ec, result));
        } else {
            const handler_executor ex = boost::asio::get_associated_executor(handler, cq.executor);
            boost::asio::dispatch(ex, boost::asio::append(std::move(handler), ec, result));
        }
    }

    Handler handler_;
    std::optional<work_type> work_;
};

} // namespace rcq::detail
