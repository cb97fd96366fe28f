// rcq/async/qp.hpp - a queue pair whose operations are Asio asynchronous operations.
#pragma once

#include <rcq/config.hpp>

#include <rcq/async/cq.hpp>
#include <rcq/config.hpp>
#include <rcq/detail/asio_version.hpp>
#include <rcq/detail/async_op.hpp>
#include <rcq/deadline.hpp>
#include <rcq/qp.hpp>
#include <rcq/remote.hpp>
#include <rcq/state.hpp>
#include <rcq/wr.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/error_code.hpp>

#include <infiniband/verbs.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <system_error>
#include <utility>

namespace rcq {

/// An RC queue pair in state `State` whose operations are Boost.Asio
/// asynchronous operations: each takes a completion token, so the same call
/// serves a coroutine (`asio::use_awaitable`), a callback, `asio::use_future`
/// or `asio::deferred`:
///
///     rcq::async_cq<rcq::poll::blocking> cq(io.get_executor(), ctx, 256);
///     rcq::qp<rcq::state::reset> q(pd, cq.completion_queue());
///     rcq::async_qp<rcq::state::rts> aq(cq, std::move(q).to_init(...).to_rtr(...).to_rts(...));
///     std::size_t n = co_await aq.async_send(sge, asio::use_awaitable);
///
/// Completion signatures are `void(boost::system::error_code, T)`: Asio's
/// own error code type, so that use_awaitable and use_future throw a failure
/// as boost::system::system_error instead of returning it unnoticed. The
/// code of a failed work completion is in rcq::wc_category() (its value is
/// the ibv_wc_status, its message ibv_wc_status_str's); it converts to
/// std::error_code. T is the receive's ibv_wc, the byte count of a SEND,
/// WRITE or READ, or the remote word's old value for an atomic.
///
/// The typestate stays: the send-side operations exist only on
/// async_qp<state::rts>; async_recv from INIT on.
///
/// Lifetimes: the scatter/gather element is copied into the work request at
/// initiation; the memory it describes belongs to the device until the
/// operation completes, whatever else happens (cancellation included).
/// Every work request is signaled.
///
/// Cancellation. Verbs cannot withdraw one posted work request; they can
/// only flush all of a QP's by moving it to ERROR. So close() moves the QP
/// to ERROR, and each outstanding operation completes with
/// asio::error::operation_aborted when its flush completion is taken from
/// the CQ, not before (until then the device may still use its memory).
/// Terminal cancellation of one operation through its handler's
/// cancellation slot does the same as close(): the QP goes to ERROR and
/// every outstanding operation on it completes with operation_aborted.
/// Partial and total cancellation are not supported (a request that cannot
/// be withdrawn has side effects), and are ignored. An operation started
/// after close() completes with operation_aborted at once.
///
/// No allocation of its own per operation: an operation's state (the
/// handler, the outstanding-work tracking) is allocated with the handler's
/// associated allocator; when it has none, from the async_cq's cache of
/// finished operations' blocks (one free list per 64-byte size class up to
/// 512 bytes, operator new beyond), which reuses the same blocks in steady
/// state. The handler is invoked through its associated executor, as Asio's
/// own operations do.
///
/// Not thread safe (as async_cq). Neither copyable nor movable: operations
/// point to it. The destructor closes the QP and drains it when operations
/// are still outstanding (for at most 5 s), so their handlers run with
/// operation_aborted before the QP is destroyed.
template <class State>
class async_qp : private detail::async_qp_core {
    static_assert(qp_state<State>, "rcq::async_qp<State>: State must be one of rcq::state::init, "
                                   "rtr or rts");

public:
    /// The io_context executor completions are delivered on.
    using executor_type = detail::async_executor;
    /// The state of the QP it owns.
    using state_type = State;

    /// Takes over `q`, whose completions go to `c`'s CQ (it was made with
    /// c.completion_queue()); `c` must outlive this object (destroying it
    /// first stops the program with a message naming the mistake).
    template <class Poll>
    async_qp(async_cq<Poll>& c, qp<State>&& q)
        : detail::async_qp_core{&c.core(), &close_from_cancel}, qp_(std::move(q)) {
        ++cq->qps;
    }

    async_qp(const async_qp&) = delete;
    async_qp& operator=(const async_qp&) = delete;

    /// Closes and drains the QP when operations are outstanding.
    ~async_qp() {
        if (outstanding != 0) {
            close_from_cancel(*this);
            const deadline until = deadline::after(std::chrono::seconds(5));
            while (outstanding != 0 && !until.expired())
                if (cq->drain(detail::completion_site::elsewhere) < 0) break;
        }
        --cq->qps;
    }

    /// The executor of the io_context that delivers the completions.
    executor_type get_executor() const noexcept { return cq->executor; }
    /// The raw QP (for queries; posting on it directly breaks the CQ's
    /// rule that every completion belongs to an asynchronous operation).
    ibv_qp* get() const noexcept { return errored_ ? errored_->get() : qp_.get(); }
    /// The QP number.
    std::uint32_t qp_num() const noexcept { return get()->qp_num; }
    /// Its operations posted and not yet completed.
    std::size_t outstanding_operations() const noexcept { return outstanding; }
    /// Whether close() was called (or a terminal cancellation closed it).
    bool is_closed() const noexcept { return closed; }

    /// Moves the QP to ERROR: every outstanding operation completes with
    /// operation_aborted once its flush completion is polled, and every
    /// operation started later completes with operation_aborted at once.
    /// Throws rcq::error when the transition fails. Idempotent.
    void close() {
        if (closed) return;
        closed = true;
        if constexpr (!std::same_as<State, state::error>)
            errored_.emplace(std::move(qp_).to_error());
    }

    /// Gives up the QP without destroying it (for a QP that is owned
    /// elsewhere, adopted with qp::adopt_unchecked). Precondition: no
    /// operation is outstanding.
    ibv_qp* release() && noexcept {
        return errored_ ? std::move(*errored_).release() : std::move(qp_).release();
    }

    // -- operations ----------------------------------------------------------

    /// Receives into `sge`; completes with `void(error_code, ibv_wc)` (byte_len,
    /// imm_data in network order, wc_flags & IBV_WC_WITH_IMM).
    template <class Token>
    auto async_recv(const ibv_sge& sge, Token&& token)
        requires qp_must_be_in_init_rtr_or_rts_to_post_recv<State>
    {
        return start<detail::recv_result>(std::forward<Token>(token), sge.length,
                                          [this, sge](std::uint64_t id) noexcept {
                                              recv_wr wr(sge, id);
                                              return qp_.post_recv(wr);
                                          });
    }

    /// SENDs `sge`; completes with `void(error_code, std::size_t bytes)`.
    template <class Token>
    auto async_send(const ibv_sge& sge, Token&& token)
        requires qp_must_be_in_rts_to_post_send<State>
    {
        return start<detail::bytes_result>(std::forward<Token>(token), sge.length,
                                           [this, sge](std::uint64_t id) noexcept {
                                               send_op wr(sge, id);
                                               return qp_.post_send(wr);
                                           });
    }

    /// SENDs `sge` with 32 bits of immediate data (host order; the peer's
    /// receive completion carries it); completes as async_send.
    template <class Token>
    auto async_send(const ibv_sge& sge, std::uint32_t imm, Token&& token)
        requires qp_must_be_in_rts_to_post_send<State>
    {
        return start<detail::bytes_result>(std::forward<Token>(token), sge.length,
                                           [this, sge, imm](std::uint64_t id) noexcept {
                                               send_imm_op wr(sge, id, imm);
                                               return qp_.post_send(wr);
                                           });
    }

    /// RDMA WRITEs `sge` into `to`; completes with `void(error_code, std::size_t)`.
    /// Throws rcq::error (ERANGE) before posting when `sge` is longer than `to`.
    template <class Token>
    auto async_write(const ibv_sge& sge, const remote_slice& to, Token&& token)
        requires qp_must_be_in_rts_to_post_send<State>
    {
        check_slice(sge, to, "RDMA WRITE");
        return start<detail::bytes_result>(std::forward<Token>(token), sge.length,
                                           [this, sge, to](std::uint64_t id) noexcept {
                                               return post_checked<write_op>(sge, to, id);
                                           });
    }

    /// RDMA WRITE with immediate data (consumes one receive at the peer).
    template <class Token>
    auto async_write(const ibv_sge& sge, const remote_slice& to, std::uint32_t imm, Token&& token)
        requires qp_must_be_in_rts_to_post_send<State>
    {
        check_slice(sge, to, "RDMA WRITE with immediate");
        return start<detail::bytes_result>(std::forward<Token>(token), sge.length,
                                           [this, sge, to, imm](std::uint64_t id) noexcept {
                                               return post_checked<write_imm_op>(sge, to, id, imm);
                                           });
    }

    /// RDMA READs `from` into `sge`; completes with `void(error_code, std::size_t)`.
    template <class Token>
    auto async_read(const ibv_sge& sge, const remote_slice& from, Token&& token)
        requires qp_must_be_in_rts_to_post_send<State>
    {
        check_slice(sge, from, "RDMA READ");
        return start<detail::bytes_result>(std::forward<Token>(token), sge.length,
                                           [this, sge, from](std::uint64_t id) noexcept {
                                               return post_checked<read_op>(sge, from, id);
                                           });
    }

    /// Fetch-and-add of `add` on the remote word; the old value lands in the
    /// 8 bytes of `sge` and the operation completes with it:
    /// `void(error_code, std::uint64_t old)`.
    template <class Token>
    auto async_fetch_add(const ibv_sge& sge, const remote_word& at, std::uint64_t add,
                         Token&& token)
        requires qp_must_be_in_rts_to_post_send<State>
    {
        return start<detail::old_value_result>(std::forward<Token>(token), sge.addr,
                                               [this, sge, at, add](std::uint64_t id) noexcept {
                                                   fetch_add_op wr(sge, at, id, add);
                                                   return qp_.post_send(wr);
                                               });
    }

    /// Compare-and-swap on the remote word (becomes `swap` if it equals
    /// `compare`); completes with the old value, as async_fetch_add.
    template <class Token>
    auto async_compare_swap(const ibv_sge& sge, const remote_word& at, std::uint64_t compare,
                            std::uint64_t swap, Token&& token)
        requires qp_must_be_in_rts_to_post_send<State>
    {
        return start<detail::old_value_result>(
            std::forward<Token>(token), sge.addr,
            [this, sge, at, compare, swap](std::uint64_t id) noexcept {
                compare_swap_op wr(sge, at, id, compare, swap);
                return qp_.post_send(wr);
            });
    }

private:
    static void close_from_cancel(detail::async_qp_core& core) noexcept {
        try {
            static_cast<async_qp&>(core).close();
        } catch (...) {
            // The transition failed: the QP keeps its state and the
            // operations complete as the device completes them.
        }
    }

    static void check_slice(const ibv_sge& sge, const remote_slice& to, const char* op) {
        if (sge.length > to.length) [[unlikely]]
            detail::remote_too_short(op, sge.length, to.length);
    }

    // The length was checked by check_slice, so building cannot throw.
    template <class Wr, class... Args>
    int post_checked(const ibv_sge& sge, const remote_slice& to, std::uint64_t id,
                     Args... args) noexcept {
        try {
            Wr wr(sge, to, id, args...);
            return qp_.post_send(wr);
        } catch (...) {
            return ERANGE;
        }
    }

    // The one initiation of every operation: allocates the operation with
    // the handler's allocator, posts its work request (wr_id = the
    // operation), and hands it to the CQ driver. An operation that cannot be
    // posted (closed QP, full queue) completes through a post, never inside
    // its initiating call.
    template <class Result, class Token, class Post>
    auto start(Token&& token, std::uint64_t aux, Post post) {
        return boost::asio::async_initiate<Token,
                                           void(boost::system::error_code, typename Result::type)>(
            [this, aux](auto handler, Post post) {
                using handler_type = decltype(handler);
                auto* op = detail::async_op_impl<Result, handler_type>::make(std::move(handler),
                                                                            this, aux);
                if (closed) [[unlikely]] {
                    op->complete(op, ibv_wc{}, boost::asio::error::operation_aborted,
                                 detail::completion_site::initiation);
                    return;
                }
                if (const int rc = post(op->wr_id()); rc != 0) [[unlikely]] {
                    op->complete(op, ibv_wc{},
                                 boost::system::error_code(rc, boost::system::generic_category()),
                                 detail::completion_site::initiation);
                    return;
                }
                op->watch_cancellation();
                ++outstanding;
                cq->started();
            },
            token, std::move(post));
    }

    qp<State> qp_;
    std::optional<qp<state::error>> errored_;
};

} // namespace rcq
