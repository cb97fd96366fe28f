// rcq/async/cq.hpp - a completion queue whose completions an io_context delivers.
#pragma once

#include <rcq/config.hpp>

#include <rcq/category.hpp>
#include <rcq/cq.hpp>
#include <rcq/detail/asio_version.hpp>
#include <rcq/detail/async_op.hpp>
#include <rcq/detail/misuse.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/system/error_code.hpp>

#include <infiniband/verbs.h>

#include <concepts>
#include <cstddef>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace rcq {

/// A poll policy that an async_cq can drive: it makes the CQ
/// (`make_cq(ctx, depth)`). A policy with `channel()` (the completion
/// channel its CQs are bound to) is woken through the channel's descriptor,
/// after `spins` empty polls when it has that static member (0 when not); a
/// policy without one is polled from the io_context without sleeping.
template <class P>
concept async_poll_policy = std::same_as<typename P::rcq_category, category::poll> &&
                            requires(P& p, ibv_context* ctx, int depth) {
                                { p.make_cq(ctx, depth) } -> std::same_as<cq>;
                            };

namespace detail {
template <class P>
concept channel_poll = requires(const P& p) {
    { p.channel() } -> std::convertible_to<ibv_comp_channel*>;
};
template <class P>
constexpr unsigned async_spins() noexcept {
    if constexpr (requires { P::spins; })
        return P::spins;
    else
        return 0;
}
} // namespace detail

/// A completion queue whose completions an io_context delivers to the
/// asynchronous operations of the async_qp objects using it (any number of
/// them: one CQ and one io_context for many QPs). Each operation's work
/// request carries the operation's address as its wr_id, so a completion
/// goes to the waiting operation in constant time, whichever QP it came from.
///
/// How the io_context learns of completions is the poll policy's meaning:
/// - poll::busy: a handler polls the CQ and posts itself again while any
///   operation is outstanding, so the thread never sleeps then;
/// - poll::blocking: the completion channel's descriptor is registered with
///   the io_context; the CQ is armed, the io_context waits for the
///   descriptor to be readable, then the events are taken and acknowledged,
///   the CQ is polled dry, armed again and polled once more (a completion
///   that came between the last empty poll and the arming raises no event);
/// - poll::adaptive<Spins>: Spins polls from posted handlers, then as blocking.
/// When no operation is outstanding nothing is pending, so io_context::run()
/// returns once the program's own work is done.
///
/// Every completion on this CQ must belong to an asynchronous operation: a
/// work request posted on its QPs by other means (its wr_id is not an
/// operation's) is a bug. Not thread safe: run the io_context on one thread
/// (or call everything from one strand's thread). Neither copyable nor
/// movable: operations refer to it.
///
/// Lifetime: destroy it after the async_qp objects using it (its destructor
/// stops the program with a message naming the mistake when one is still
/// there) and before the io_context, as any Asio I/O object. It may be
/// destroyed while the io_context still holds the poll or wait it queued:
/// that handler then finds it gone and does nothing.
template <async_poll_policy Poll>
class async_cq {
public:
    /// The io_context executor the operations and the driving run on.
    using executor_type = detail::async_executor;
    /// The poll policy.
    using poll_type = Poll;

    /// Makes its poll policy and, through it, a CQ of at least `depth`
    /// entries on `ctx`; throws rcq::error.
    async_cq(const executor_type& ex, ibv_context* ctx, int depth)
        : own_poll_(std::in_place, ctx), poll_(&*own_poll_),
          own_cq_(own_poll_->make_cq(ctx, depth)), cq_(&*own_cq_),
          core_(ex, cq_->get(), &kick, this), descriptor_(make_descriptor(ex)) {}

    /// Drives a CQ made elsewhere with the poll policy that made it (e.g. a
    /// connection's completion_queue() and poll_policy()); both must outlive
    /// this object, and nothing else may poll the CQ meanwhile.
    async_cq(const executor_type& ex, Poll& policy, const cq& c)
        : poll_(&policy), cq_(&c), core_(ex, c.get(), &kick, this), descriptor_(make_descriptor(ex)) {}

    /// Not a temporary CQ (`policy.make_cq(ctx, n)` passed straight in): it
    /// would be destroyed at the end of the statement while this object
    /// drives it. Name the CQ in a variable that outlives this object.
    async_cq(const executor_type& ex, Poll& policy, cq&& c) = delete;

    async_cq(const async_cq&) = delete;
    async_cq& operator=(const async_cq&) = delete;

    /// Gives the descriptor back to the poll policy, which owns it, and
    /// leaves a poll or wait still queued in the io_context with nothing to
    /// do. Stops the program (rcq::detail::misuse) when an async_qp still
    /// uses this CQ: its operations and its destructor's drain would reach
    /// a destroyed object.
    ~async_cq() {
        if (core_.qps != 0)
            detail::misuse("rcq::async_cq destroyed while an async_qp still uses it: destroy the "
                           "async_qp objects first");
        if (descriptor_) (void)descriptor_->release(); // a pending wait ends, aborted
        if (core_.driving) {
            // A queued handler holds the anchor: it frees it when it runs or
            // when the io_context destroys it.
            anchor_->cq = nullptr;
            (void)anchor_.release();
        }
    }

    /// The executor of the io_context that delivers the completions.
    executor_type get_executor() const noexcept { return core_.executor; }
    /// The CQ: make the QPs with it (rcq::qp(pd, completion_queue(), caps)).
    const cq& completion_queue() const noexcept { return *cq_; }
    /// The poll policy.
    Poll& poll_policy() noexcept { return *poll_; }
    /// Operations posted and not yet completed, over all its QPs.
    std::size_t outstanding() const noexcept { return core_.outstanding; }

    /// Hands one work completion of an asynchronous operation to it, for a
    /// program that polls the CQ itself (e.g. a router of a CQ shared with
    /// synchronous QPs): the handler runs as if this object had found it.
    static void deliver(const ibv_wc& wc) noexcept {
        detail::deliver(wc, detail::completion_site::elsewhere);
    }

private:
    template <class>
    friend class async_qp;

    static constexpr bool evented = detail::channel_poll<Poll>;
    static constexpr unsigned spins = detail::async_spins<Poll>();
    static constexpr int inline_polls = 16;
    using descriptor = boost::asio::posix::basic_stream_descriptor<executor_type>;

    detail::async_cq_core& core() noexcept { return core_; }

    std::optional<descriptor> make_descriptor(const executor_type& ex) {
        if constexpr (evented)
            return std::optional<descriptor>(std::in_place, ex, poll_->channel()->fd);
        else
            return std::nullopt;
    }

    // What a queued poll or wait reaches this object through. Allocated
    // once; when this object is destroyed while one is queued, it outlives
    // it with cq == nullptr, and the handler frees it.
    struct anchor {
        async_cq* cq;
    };

    // The hold of a queued handler (while core_.driving) on the anchor:
    // move-only, since Asio moves handlers; one that is destroyed without
    // being invoked (the io_context is destroyed first) lets go as well.
    class anchor_hold {
    public:
        explicit anchor_hold(anchor* a) noexcept : a_(a) {}
        anchor_hold(anchor_hold&& other) noexcept : a_(std::exchange(other.a_, nullptr)) {}
        anchor_hold& operator=(anchor_hold&&) = delete;
        ~anchor_hold() {
            if (a_ == nullptr) return;
            if (a_->cq != nullptr)
                a_->cq->core_.driving = false; // nothing is queued any more
            else
                delete a_;
        }
        // The CQ, still driving, or nullptr when it was destroyed meanwhile.
        async_cq* take() noexcept {
            anchor* a = std::exchange(a_, nullptr);
            if (a->cq != nullptr) [[likely]]
                return a->cq;
            delete a;
            return nullptr;
        }

    private:
        anchor* a_;
    };

    // A posted handler: one poll of the CQ.
    struct poll_step {
        anchor_hold hold;
        void operator()() noexcept {
            if (async_cq* cq = hold.take()) cq->on_poll();
        }
    };
    // The descriptor's readiness.
    struct wake {
        anchor_hold hold;
        void operator()(const boost::system::error_code& ec) noexcept {
            if (async_cq* cq = hold.take()) cq->on_wake(ec);
        }
    };

    void post_poll() noexcept {
        boost::asio::post(core_.executor, poll_step{anchor_hold(anchor_.get())});
    }

    static void kick(detail::async_cq_core& core) noexcept {
        static_cast<async_cq*>(core.driver)->start();
    }

    void start() noexcept {
        empty_polls_ = 0;
        if constexpr (!evented || spins > 0)
            post_poll();
        else
            arm_and_wait();
    }

    bool idle() noexcept {
        if (core_.outstanding != 0) return false;
        core_.driving = false;
        return true;
    }

    // Polls again at once while completions keep coming (up to a bound, so
    // that other handlers get their turn), and posts itself otherwise.
    void on_poll() noexcept {
        int n = 0;
        for (int round = 0; round < inline_polls; ++round) {
            n = core_.drain(detail::completion_site::driver);
            if (idle()) return;
            if (n <= 0) break;
        }
        if constexpr (evented) {
            empty_polls_ = n > 0 ? 0 : empty_polls_ + 1;
            if (empty_polls_ >= spins) {
                empty_polls_ = 0;
                arm_and_wait();
                return;
            }
        }
        post_poll();
    }

    void arm_and_wait() noexcept {
        if constexpr (evented) {
            for (;;) {
                (void)ibv_req_notify_cq(core_.cq, 0);
                if (core_.drain(detail::completion_site::driver) == 0) break; // armed with nothing left behind
                if (idle()) return;
            }
            descriptor_->async_wait(descriptor::wait_read, wake{anchor_hold(anchor_.get())});
        }
    }

    void on_wake(const boost::system::error_code& ec) noexcept {
        if constexpr (evented) {
            if (ec) { // the descriptor was released or cancelled
                core_.driving = false;
                return;
            }
            // Take every event the channel holds (it is non-blocking), each
            // acknowledged at once: ibv_destroy_cq waits for all to be.
            ibv_cq* event_cq = nullptr;
            void* context = nullptr;
            while (ibv_get_cq_event(poll_->channel(), &event_cq, &context) == 0)
                ibv_ack_cq_events(event_cq, 1);
            (void)core_.drain(detail::completion_site::driver);
            if (idle()) return;
            if constexpr (spins > 0) {
                empty_polls_ = 0;
                post_poll();
            } else {
                arm_and_wait();
            }
        }
    }

    std::optional<Poll> own_poll_;
    Poll* poll_;
    std::optional<cq> own_cq_;
    const cq* cq_;
    detail::async_cq_core core_;
    std::optional<descriptor> descriptor_;
    std::unique_ptr<anchor> anchor_ = std::make_unique<anchor>(anchor{this});
    unsigned empty_polls_ = 0;
};

} // namespace rcq
