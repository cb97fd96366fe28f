// async_round_trip.hpp - a receive and a SEND in flight together, awaited
// together by a coroutine, without allocating once running.
//
// A ping-pong side must post its next receive before its SEND (the peer's
// answer may arrive before the SEND's own completion), then wait for both.
// Asio's parallel group does that, but allocates its shared state each time.
// Here both operations complete through plain callbacks that keep their
// results in this object, and the last of them resumes the coroutine, whose
// handler waits here meanwhile: the operations' memory comes from the CQ's
// cache and the coroutine frames from Asio's recycling.
#pragma once

#include <rcq/async.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <infiniband/verbs.h>

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <utility>

namespace example {

class async_round_trip {
public:
    using rts_qp = rcq::async_qp<rcq::state::rts>;

    explicit async_round_trip(rts_qp& q) : q_(q) {}

    // Callbacks of operations in flight point here.
    async_round_trip(const async_round_trip&) = delete;
    async_round_trip& operator=(const async_round_trip&) = delete;

    /// Posts a receive into `in`, then the SEND of `out`, and resumes once
    /// both completed, with the receive's work completion; throws
    /// boost::system::system_error when either failed. One round at a time:
    /// a call while a round is in flight throws std::logic_error and posts
    /// nothing.
    /// Terminal cancellation of the waiting coroutine closes the QP (a
    /// posted operation can only end by being flushed); the round then ends
    /// when both flush completions are polled, with operation_aborted.
    boost::asio::awaitable<ibv_wc> operator()(const ibv_sge& in, const ibv_sge& out) {
        if (left_ != 0) throw std::logic_error("async_round_trip: a round is already in flight");
        left_ = 2;
        recv_ec_ = send_ec_ = {};
        q_.async_recv(in, on_recv{this});
        q_.async_send(out, on_send{this});
        // rcq never runs a handler inside its initiating call, so both are
        // still in flight here: the coroutine's handler waits for them.
        co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void()>(
            [this](wake_handler handler) {
                auto slot = boost::asio::get_associated_cancellation_slot(handler);
                if (slot.is_connected())
                    slot.template emplace<close_on_cancel>(close_on_cancel{&q_});
                waiting_.emplace(std::move(handler));
            },
            boost::asio::use_awaitable);
        if (send_ec_) throw boost::system::system_error(send_ec_, "the SEND");
        if (recv_ec_) throw boost::system::system_error(recv_ec_, "the receive");
        co_return wc_;
    }

private:
    using wake_handler =
        boost::asio::async_result<boost::asio::use_awaitable_t<>, void()>::handler_type;

    struct on_recv {
        async_round_trip* self;
        void operator()(const boost::system::error_code& ec, const ibv_wc& wc) const {
            self->recv_ec_ = ec;
            self->wc_ = wc;
            self->arrived();
        }
    };
    struct on_send {
        async_round_trip* self;
        void operator()(const boost::system::error_code& ec, std::size_t) const {
            self->send_ec_ = ec;
            self->arrived();
        }
    };
    struct close_on_cancel {
        rts_qp* q;
        void operator()(boost::asio::cancellation_type type) const noexcept {
            if ((type & boost::asio::cancellation_type::terminal) ==
                boost::asio::cancellation_type::none)
                return;
            try {
                q->close();
            } catch (...) {
                // The QP keeps its state; the operations end as the device ends them.
            }
        }
    };

    // Runs in a completion handler, on the io_context's thread: resumes the
    // coroutine there, as rcq resumes it after an awaited operation.
    void arrived() {
        if (--left_ != 0) return;
        wake_handler handler(std::move(*waiting_));
        waiting_.reset();
        auto slot = boost::asio::get_associated_cancellation_slot(handler);
        if (slot.is_connected()) slot.clear();
        std::move(handler)();
    }

    rts_qp& q_;
    int left_ = 0;
    std::optional<wake_handler> waiting_;
    boost::system::error_code recv_ec_, send_ec_;
    ibv_wc wc_{};
};

} // namespace example
