// rcq/poll/blocking.hpp - wait for completions on a completion channel.
#pragma once

#include <rcq/config.hpp>

#include <rcq/category.hpp>
#include <rcq/config.hpp>
#include <rcq/cq.hpp>
#include <rcq/deadline.hpp>
#include <rcq/device.hpp>
#include <rcq/error.hpp>

#include <infiniband/verbs.h>
#include <fcntl.h>
#include <poll.h>

#include <cerrno>
#include <span>
#include <utility>

namespace rcq::poll {

/// Sleeps in poll(2) on a completion channel until the CQ signals an event,
/// so a waiting thread costs no CPU; each wake-up costs a system call and an
/// event acknowledgement, tens of microseconds more latency than spinning.
///
/// Every CQ made by make_cq() is armed (ibv_req_notify_cq) from the start,
/// and a CQ whose event is taken is re-armed at once, whichever CQ the wait
/// was for: several CQs may share the channel, and a wait on one can take
/// another's event. The CQ waited on is polled again after each event, so a
/// completion that arrives between the last empty poll and the re-arm is
/// found by that poll rather than waiting for an event that will never come.
/// Move-only; owns the channel, which must outlive the CQ it made.
class blocking {
public:
    /// Marks this type as a poll policy.
    using rcq_category = category::poll;

    /// Creates the completion channel it blocks on; throws rcq::error.
    explicit blocking(ibv_context* ctx) : channel_(ibv_create_comp_channel(ctx)) {
        if (channel_ == nullptr) throw_error("ibv_create_comp_channel(" + device_name(ctx) + ")");
        // Non-blocking, so that a spurious wake-up cannot block in
        // ibv_get_cq_event past the deadline.
        const int flags = fcntl(channel_->fd, F_GETFL);
        if (flags < 0 || fcntl(channel_->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
            const int err = errno;
            ibv_destroy_comp_channel(channel_);
            throw_error("fcntl(O_NONBLOCK) on the completion channel", {}, err);
        }
    }
    /// Takes over the channel.
    blocking(blocking&& other) noexcept : channel_(std::exchange(other.channel_, nullptr)) {}
    blocking& operator=(blocking&&) = delete;
    ~blocking() {
        if (channel_ != nullptr) ibv_destroy_comp_channel(channel_);
    }

    /// A CQ bound to this policy's channel, armed for its first event.
    cq make_cq(ibv_context* ctx, int depth) {
        cq c(ctx, depth, channel_);
        if (int rc = ibv_req_notify_cq(c.get(), 0); rc != 0)
            throw_error("ibv_req_notify_cq", {}, rc);
        return c;
    }

    /// Waits for up to `out.size()` completions. Returns how many arrived
    /// (> 0), 0 when the deadline passed first, or -errno when waiting failed.
    /// The first poll is inlined, as a spinning poller's is; the sleeping
    /// part is a call of its own.
    template <class Cq = cq>
    [[nodiscard]] RCQ_ALWAYS_INLINE int wait(const Cq& c, std::span<ibv_wc> out,
                                             const deadline& until) noexcept {
        if (int n = c.poll(out); n != 0) return n;
        return sleep_then_poll(c, out, until);
    }

    /// wait() once the CQ was found empty: sleeps on the channel, re-arms and
    /// polls again, until completions arrive or the deadline passes.
    template <class Cq = cq>
    [[gnu::noinline]] int sleep_then_poll(const Cq& c, std::span<ibv_wc> out,
                                          const deadline& until) noexcept {
        for (;;) {
            if (int n = c.poll(out); n != 0) return n;
            pollfd pfd{channel_->fd, POLLIN, 0};
            const int ready = ::poll(&pfd, 1, until.remaining_ms());
            if (ready < 0 && errno != EINTR) return -errno;
            if (ready == 0) return c.poll(out); // one last look, then report the deadline
            if (ready < 0) continue;
            if (int rc = take_event(); rc != 0) return rc;
        }
    }

    /// For the narration.
    static const char* describe() noexcept { return "blocking on a completion channel"; }

    /// The completion channel (non-blocking) its CQs are bound to; an
    /// rcq::async_cq waits for its descriptor in an io_context.
    ibv_comp_channel* channel() const noexcept { return channel_; }

private:
    // Takes one event from the channel and re-arms the CQ it came from (not
    // necessarily the one being waited on: if that other CQ were left
    // unarmed, its next completion would raise no event and its own waiter
    // would sleep until its deadline with the completion already there).
    int take_event() noexcept {
        ibv_cq* event_cq = nullptr;
        void* cq_context = nullptr;
        if (ibv_get_cq_event(channel_, &event_cq, &cq_context) != 0)
            return errno == EAGAIN ? 0 : -errno; // EAGAIN: woken by an event already taken
        // Acknowledged at once: ibv_destroy_cq waits for every event to be.
        ibv_ack_cq_events(event_cq, 1);
        return ibv_req_notify_cq(event_cq, 0) != 0 ? -EIO : 0;
    }

    ibv_comp_channel* channel_;
};

} // namespace rcq::poll
