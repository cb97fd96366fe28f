// rcq/handshake/tcp_listener.hpp - one TCP port serving the handshakes of
// many clients at once, each under its own deadline.
#pragma once

#include <rcq/config.hpp>

#include <rcq/deadline.hpp>
#include <rcq/detail/auth.hpp>
#include <rcq/detail/socket.hpp>
#include <rcq/detail/tcp_arrival.hpp>
#include <rcq/detail/tcp_go_ahead.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/handshake/tcp_link.hpp>
#include <rcq/secret.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <poll.h>
#include <sys/socket.h>

namespace rcq::handshake {

/// Settings of a tcp_listener; every field has a working default.
struct tcp_listener_options {
    /// The local address to listen on: 0.0.0.0 (all IPv4), :: (IPv4 and
    /// IPv6), or one interface's address.
    std::string bind_address = "0.0.0.0";
    /// The longest a connection may take, from its arrival, to deliver its
    /// endpoint (with a secret: its hello and its endpoint). A connection
    /// that does not is closed without a byte of reply.
    std::chrono::milliseconds hello_timeout = std::chrono::seconds{10};
    /// The longest a client may take, from its endpoint's arrival, to send
    /// its go-ahead (its QP to RTS, in its own time). Past it, accept() throws
    /// that client's error. It bounds tcp_link::barrier() too.
    std::chrono::milliseconds talk_timeout = std::chrono::seconds{30};
    /// How many handshakes may be in progress at once. A connection arriving
    /// beyond it takes the place of the oldest one that has not yet delivered
    /// its endpoint, or is closed unread when every one has.
    std::size_t max_pending = 1024;
};

/// What the caller's `prepare` gives back for one client: our endpoint, to
/// send to it, and the caller's object for that client (its QP, say), kept
/// until the handshake ends.
template <class Attached>
struct tcp_reply {
    endpoint local;    ///< Our endpoint for this client.
    Attached attached; ///< The caller's object for this client.
};

/// One client whose handshake is complete: both endpoints and go-aheads swapped.
template <class Attached>
struct tcp_accepted {
    tcp_link link;     ///< The connection (the liveness signal), the client's address and endpoint.
    endpoint local;    ///< Our endpoint, as sent.
    Attached attached; ///< What `prepare` gave for this client.
};

/// The server side of the TCP handshake for many clients on one port. It
/// speaks exactly handshake::tcp's server protocol, so each client is a plain
/// `handshake::tcp::client` (exchange(), then barrier()); only the server
/// side differs: it never closes the port after a client, and it runs every
/// client's handshake at once in one poll(2) loop, each under its own
/// deadline, so no client waits for another (no head-of-line blocking).
///
/// Each client goes through these stages:
///  1. its endpoint arrives (with a secret: its hello, our challenge, its
///     endpoint with a tag), checked as bytes arrive, within hello_timeout.
///     A connection that fails this is a stranger: closed without a byte of
///     reply (nothing about this side leaks), counted in refused(), never
///     reported by accept();
///  2. the caller's `prepare(const endpoint& remote)` makes the client's QP,
///     brings it to RTS against `remote` with its receives posted (or on an
///     SRQ), and returns a tcp_reply: our endpoint and the QP (or whatever
///     the caller keeps per client);
///  3. our endpoint (with a secret: and its tag) is sent;
///  4. the client's go-ahead arrives, within talk_timeout of stage 1's end.
/// accept() runs all of them until one client has passed stage 4, and
/// returns it. A client that fails after stage 1 (prepare throws, it closes,
/// it is too slow, it sends something other than the go-ahead) ends its own
/// handshake only: accept() throws rcq::error naming it, and the next call
/// goes on with the others.
///
/// Our go-ahead is left to the caller: the returned link's barrier() sends
/// it (rcq::peer::ready() calls it). Until then the client waits in its own
/// barrier() and sends nothing over RDMA, so the caller can first make ready
/// what the client's first messages need (route the QP's completions, say).
/// Reading the client's go-ahead before sending ours is a different order
/// from handshake::tcp's server, which the client cannot tell: both sides
/// write their go-ahead before they read the other's.
///
/// Handshakes move on only while accept() runs: a server calls it in a loop
/// (or between its other work, with a short timeout).
///
/// `Attached` is the type of the caller's per-client object (move-only is
/// fine). Move-only; a moved-from listener is stopped. Not thread-safe.
template <class Attached = std::monostate>
class tcp_listener {
public:
    /// Binds to `port` (0: any free port, see port()) and listens now; a busy
    /// port is reported at once. Throws rcq::error.
    explicit tcp_listener(std::uint16_t port, tcp_listener_options options = {})
        : options_(std::move(options)) {
        if (options_.hello_timeout <= std::chrono::milliseconds::zero() ||
            options_.talk_timeout <= std::chrono::milliseconds::zero())
            throw_invalid("tcp listener: hello_timeout and talk_timeout must be positive",
                          "for no time limit, give std::chrono::milliseconds::max()");
        if (options_.max_pending == 0)
            throw_invalid("tcp listener: max_pending is 0", "allow at least one handshake at a time");
        // The largest backlog (the kernel caps it at net.core.somaxconn):
        // clients that connect at once wait there, not in SYN retries.
        auto bound = rcq::detail::tcp_listen(options_.bind_address, port, SOMAXCONN, "tcp listener");
        listening_ = std::move(bound.fd);
        port_ = bound.port;
    }

    /// Takes over; `other` is left stopped.
    tcp_listener(tcp_listener&&) noexcept = default;
    /// Takes over; `other` is left stopped, and this one's clients are dropped.
    tcp_listener& operator=(tcp_listener&&) noexcept = default;
    tcp_listener(const tcp_listener&) = delete;
    tcp_listener& operator=(const tcp_listener&) = delete;
    ~tcp_listener() = default; // the descriptors close themselves

    /// Requires every client to prove it knows `secret`, and proves it in
    /// turn (see handshake::tcp::authenticate). Call before the first accept().
    void authenticate(shared_secret secret) { auth_.set_secret(std::move(secret)); }

    /// Lets our endpoints carry a memory token without authentication.
    void allow_memory_without_secret() noexcept { auth_.allow_memory_without_secret(); }

    /// Serves every handshake in progress, and the connections that arrive,
    /// until one client has completed its handshake, for at most `timeout`;
    /// returns that client. `prepare(const endpoint& remote)` is called once
    /// per client when its endpoint has arrived (stage 2 of the class
    /// comment) and must return tcp_reply<Attached>; it runs inside the loop,
    /// so it should not block for long.
    ///
    /// Throws rcq::error: naming one client when its handshake failed after
    /// it had delivered its endpoint (what prepare threw, the client closing,
    /// a wrong go-ahead, talk_timeout passed; its `attached` object is
    /// destroyed), or ETIMEDOUT when no client completed within `timeout`.
    /// Neither ends the listener: call accept() again to go on; handshakes in
    /// progress are kept, each under its own deadline.
    template <class Prepare>
    tcp_accepted<Attached> accept(Prepare&& prepare, std::chrono::milliseconds timeout) {
        if (auto done = try_accept(prepare, timeout)) return std::move(*done);
        throw_error(role() + ": no client completed its handshake within " + rcq::detail::budget_text(timeout) +
                        " (" + std::to_string(pending_.size()) + " in progress, " +
                        std::to_string(refused_) + " refused so far)",
                    "call accept() again to go on waiting; the handshakes in progress are kept",
                    ETIMEDOUT);
    }

    /// As accept(), but returns nothing when no client completed within
    /// `timeout`: for a server loop that does other work in between (a
    /// timeout of zero looks once at every socket without waiting). Throws
    /// rcq::error for one client's failure, as accept().
    template <class Prepare>
    std::optional<tcp_accepted<Attached>> try_accept(Prepare&& prepare, std::chrono::milliseconds timeout) {
        static_assert(std::is_same_v<std::invoke_result_t<Prepare&, const endpoint&>, tcp_reply<Attached>>,
                      "tcp_listener<A>::accept(prepare, timeout): prepare(const rcq::endpoint&) must "
                      "return rcq::handshake::tcp_reply<A>{our endpoint, the client's object}");
        if (!listening_) throw_invalid(role() + ": accept() after stop()");
        const deadline dl = deadline::after(timeout);
        const std::string what = role() + ": accepting";
        std::vector<pollfd> fds;
        for (;;) {
            expire();
            fds.assign(1, pollfd{listening_.get(), POLLIN, 0});
            int wait_ms = dl.remaining_ms();
            for (const auto& p : pending_) {
                fds.push_back(pollfd{p->fd(), p->sending() ? short(POLLOUT) : short(POLLIN), 0});
                wait_ms = std::min(wait_ms, p->until().remaining_ms());
            }
            if (::poll(fds.data(), fds.size(), wait_ms) < 0) {
                if (errno == EINTR) continue;
                throw_error(what + ": poll");
            }

            // The handshakes polled are pending_[0, fds.size() - 1); from the
            // back, so that dropping one keeps the others' indices.
            for (std::size_t i = fds.size() - 1; i-- > 0;) {
                if (fds[i + 1].revents == 0) continue;
                if (auto done = step(i, prepare)) return done;
            }

            if (fds[0].revents != 0)
                rcq::detail::accept_all(listening_.get(), what, [&](rcq::detail::unique_fd fd, std::string address) {
                    admit(std::move(fd), std::move(address));
                });
            if (dl.expired()) {
                expire();
                return std::nullopt;
            }
        }
    }

    /// Closes the port and every handshake in progress (their clients see the
    /// connection close; their `attached` objects are destroyed); idempotent.
    /// Accepted clients' links are not affected.
    void stop() noexcept {
        listening_.reset();
        pending_.clear();
    }

    /// Whether the port is open (not stopped, not moved from).
    bool is_open() const noexcept { return static_cast<bool>(listening_); }
    /// The port it listens on (the kernel's choice when 0 was asked).
    std::uint16_t port() const noexcept { return port_; }
    /// Handshakes in progress.
    std::size_t pending() const noexcept { return pending_.size(); }
    /// Connections closed as strangers so far (stage 1 failed or timed out,
    /// or dropped for room).
    std::size_t refused() const noexcept { return refused_; }
    /// Why the last stranger was refused ("10.0.0.9:5120 closed the
    /// connection after 0 of 86 bytes"); empty when none was.
    const std::string& last_refusal() const noexcept { return last_refusal_; }
    /// For the narration: "tcp listener on port 18515".
    std::string describe() const { return role(); }

private:
    // One handshake in progress.
    class client {
    public:
        client(rcq::detail::unique_fd fd, std::string address, deadline until)
            : in_(std::move(fd), std::move(address), until) {}

        int fd() const noexcept { return link_ ? link_->fd() : in_.fd(); }
        const std::string& address() const noexcept { return link_ ? link_->address() : in_.address(); }
        bool answered() const noexcept { return link_.has_value(); }
        bool sending() const noexcept { return link_ && sent_ < out_size_; }
        const deadline& until() const noexcept { return talk_ ? *talk_ : in_.until(); }

        rcq::detail::arriving_client in_;            // stage 1
        std::optional<deadline> talk_;          // from the endpoint's arrival
        std::optional<tcp_link> link_;          // stage 2 on: the connection and the client's endpoint
        endpoint local_{};
        std::optional<Attached> attached_;
        // Our endpoint and its tag.
        std::array<std::byte, endpoint_wire_size + shared_secret::tag_size> out_{};
        std::size_t out_size_ = 0;
        std::size_t sent_ = 0;
        // The client's go-ahead: header, and tag when authenticated.
        std::optional<rcq::detail::tcp_go_ahead_side> side_;
        rcq::detail::auth_nonce client_nonce_{};
        rcq::detail::auth_nonce server_nonce_{};
        std::array<std::byte, rcq::detail::tcp_go_ahead_header_size + shared_secret::tag_size> go_{};
        std::size_t go_size_ = rcq::detail::tcp_go_ahead_header_size;
        std::size_t go_got_ = 0;
    };

    std::string role() const { return "tcp listener on port " + std::to_string(port_); }

    // Stage 1 failed: closed without a reply, counted, not reported.
    void refuse(std::size_t i, const std::string& why) {
        ++refused_;
        last_refusal_ = pending_[i]->address() + " " + why;
        pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
    }

    // Stage 2 on failed: dropped, and the error thrown names the client.
    [[noreturn]] void fail(std::size_t i, const error& e) {
        const std::string who = role() + ", client " + pending_[i]->address() + ": ";
        pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
        throw error(e.code(), who + e.step(), e.hint());
    }

    void admit(rcq::detail::unique_fd fd, std::string address) {
        if (pending_.size() >= options_.max_pending) {
            auto oldest = std::find_if(pending_.begin(), pending_.end(),
                                       [](const auto& p) { return !p->answered(); });
            if (oldest == pending_.end()) {
                ++refused_;
                last_refusal_ = address + " was closed unread: " + std::to_string(options_.max_pending) +
                                " handshakes past their first stage were in progress";
                return; // `fd` closes here
            }
            refuse(static_cast<std::size_t>(oldest - pending_.begin()),
                   "was dropped unread: " + std::to_string(options_.max_pending) +
                       " newer connections were in progress");
        }
        pending_.push_back(std::make_unique<client>(std::move(fd), std::move(address),
                                                    deadline::after(options_.hello_timeout)));
    }

    // Drops every handshake whose deadline has passed: silently in stage 1,
    // with that client's error after it (one per call; the others are seen
    // on the next).
    void expire() {
        for (std::size_t i = pending_.size(); i-- > 0;) {
            auto& p = *pending_[i];
            if (!p.until().expired()) continue;
            if (!p.answered()) {
                refuse(i, p.in_.expiry_text(auth_.secret(), options_.hello_timeout));
                continue;
            }
            const std::string step =
                p.sending() ? "timed out sending our endpoint (" +
                                  rcq::detail::byte_progress(p.sent_, p.out_size_) + " sent)"
                            : "no go-ahead within " + rcq::detail::budget_text(options_.talk_timeout) +
                                  " of its endpoint (" + rcq::detail::byte_progress(p.go_got_, p.go_size_) +
                                  " of it came)";
            fail(i, error(std::make_error_code(std::errc::timed_out), step,
                          "the client's QP did not reach RTS in time, or it stopped before its "
                          "barrier(); the other clients are not affected"));
        }
    }

    // Moves handshake `i` on after poll(2) reported it; returns the client
    // once its handshake is complete.
    template <class Prepare>
    std::optional<tcp_accepted<Attached>> step(std::size_t i, Prepare& prepare) {
        auto& p = *pending_[i];
        if (!p.answered()) {
            try {
                if (!p.in_.on_readable(auth_.secret())) return std::nullopt;
            } catch (const error& e) {
                refuse(i, e.step());
                return std::nullopt;
            }
            answer(i, prepare);
            return std::nullopt;
        }
        try {
            if (p.sending()) {
                flush(p);
                return std::nullopt;
            }
            if (!read_go_ahead(p)) return std::nullopt;
        } catch (const error& e) {
            fail(i, e);
        }
        tcp_accepted<Attached> done{std::move(*p.link_), p.local_, std::move(*p.attached_)};
        pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
        return done;
    }

    // Stage 2 and 3: the caller's QP and endpoint, then ours out.
    template <class Prepare>
    void answer(std::size_t i, Prepare& prepare) {
        auto& p = *pending_[i];
        const endpoint remote = p.in_.peer();
        p.talk_ = deadline::after(options_.talk_timeout);
        rcq::detail::send_at_once(p.in_.fd());
        const auto client_nonce = p.in_.client_nonce();
        const auto server_nonce = p.in_.server_nonce();
        p.client_nonce_ = client_nonce;
        p.server_nonce_ = server_nonce;
        p.side_.emplace(rcq::detail::tcp_go_ahead_side{
            .fd = p.in_.fd(),
            .server = true,
            .secret = auth_.secret(),
            .client_nonce = p.client_nonce_,
            .server_nonce = p.server_nonce_,
            .who = role(),
            .peer = p.in_.address(),
            .budget = rcq::detail::budget_text(options_.talk_timeout)});
        p.go_size_ = rcq::detail::tcp_go_ahead_size(*p.side_);
        p.link_.emplace(p.in_.take_fd(), p.in_.address(), remote, options_.talk_timeout,
                        rcq::detail::tcp_go_ahead_message(*p.side_));
        try {
            tcp_reply<Attached> reply = prepare(remote);
            auth_.check_offer(reply.local, role());
            p.local_ = reply.local;
            p.attached_.emplace(std::move(reply.attached));
            const auto ep = encode(reply.local);
            auto at = std::copy(ep.begin(), ep.end(), p.out_.begin());
            if (const auto* secret = auth_.secret()) {
                const auto tag = rcq::detail::tcp_server_endpoint_tag(*secret, client_nonce, server_nonce, ep);
                at = std::copy(std::as_bytes(std::span(tag)).begin(), std::as_bytes(std::span(tag)).end(), at);
            }
            p.out_size_ = static_cast<std::size_t>(at - p.out_.begin());
            flush(p);
        } catch (const error& e) {
            fail(i, e);
        } catch (...) { // not rcq's: passed on as it is, and the client is dropped all the same
            pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
            throw;
        }
    }

    // Sends what the socket takes of our endpoint, without blocking.
    void flush(client& p) {
        while (p.sent_ < p.out_size_) {
            ssize_t n = ::send(p.fd(), p.out_.data() + p.sent_, p.out_size_ - p.sent_,
                               MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n >= 0) {
                p.sent_ += static_cast<std::size_t>(n);
                continue;
            }
            const int err = errno;
            if (err == EINTR) continue;
            if (err == EAGAIN || err == EWOULDBLOCK) return; // poll says when there is room
            throw_error("sending our endpoint failed after " +
                            rcq::detail::byte_progress(p.sent_, p.out_size_),
                        "the client closed the connection before reading our endpoint", err);
        }
    }

    // The client's go-ahead, read as it arrives, without blocking, and
    // checked as tcp::barrier() checks it (rcq/detail/tcp_go_ahead.hpp);
    // true once it is all there and right. (Ours is sent by
    // tcp_link::barrier().)
    static bool read_go_ahead(client& p) {
        ssize_t n = ::recv(p.fd(), p.go_.data() + p.go_got_, p.go_size_ - p.go_got_, MSG_DONTWAIT);
        if (n == 0)
            throw_error("closed the connection after " + rcq::detail::byte_progress(p.go_got_, p.go_size_) +
                            " of its go-ahead",
                        "the client exited or gave up before its barrier(); its own output says why",
                        ECONNRESET);
        if (n < 0) {
            const int err = errno;
            if (err == EINTR || err == EAGAIN || err == EWOULDBLOCK) return false;
            throw_error("reading its go-ahead failed after " + rcq::detail::byte_progress(p.go_got_, p.go_size_),
                        "the client exited or gave up before its barrier()", err);
        }
        const bool had_header = p.go_got_ >= rcq::detail::tcp_go_ahead_header_size;
        p.go_got_ += static_cast<std::size_t>(n);
        const auto got = std::span<const std::byte>(p.go_).first(p.go_got_);
        if (!had_header && p.go_got_ >= rcq::detail::tcp_go_ahead_header_size)
            rcq::detail::check_tcp_go_ahead_header(*p.side_, got.first(rcq::detail::tcp_go_ahead_header_size));
        if (p.go_got_ < p.go_size_) return false;
        if (p.side_->secret != nullptr)
            rcq::detail::check_tcp_go_ahead_tag(*p.side_, got.subspan(rcq::detail::tcp_go_ahead_header_size));
        return true;
    }

    tcp_listener_options options_;
    rcq::detail::unique_fd listening_;
    std::uint16_t port_ = 0;
    rcq::detail::handshake_auth auth_;
    std::vector<std::unique_ptr<client>> pending_;
    std::size_t refused_ = 0;
    std::string last_refusal_;
};

} // namespace rcq::handshake
