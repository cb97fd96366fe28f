// rcq/handshake/tcp.hpp - swapping endpoints with the peer over one TCP
// connection: the classic RDMA out-of-band handshake.
#pragma once

#include <rcq/category.hpp>
#include <rcq/deadline.hpp>
#include <rcq/detail/auth.hpp>
#include <rcq/detail/socket.hpp>
#include <rcq/detail/tcp_arrival.hpp>
#include <rcq/detail/tcp_go_ahead.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
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
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace rcq::detail {

/// The deadline of one connect attempt when `left` addresses (this one
/// included) remain to be tried by `dl`: an equal share of the time left, and
/// for the last address all of it.
inline deadline connect_attempt_deadline(const deadline& dl, std::size_t left) {
    const auto now = deadline::clock::now();
    if (left <= 1 || dl.at() <= now) return dl;
    return deadline(now + (dl.at() - now) / static_cast<int>(std::min<std::size_t>(left, 1024)));
}

} // namespace rcq::detail

namespace rcq::handshake {

/// The TCP handshake transport. One side is the server (listens, waits for
/// one client), the other the client (connects, retrying while the server is
/// not up yet). Each side then calls exchange() to swap endpoints and, once
/// its QP is in RTS with receives posted, barrier() so that neither side
/// sends before the other can receive. exchange() comes first, once.
///
/// The client speaks first: it sends its endpoint as soon as it is connected,
/// and the server sends nothing to a connection until that connection has
/// delivered a whole endpoint message with rcq's magic, version and length.
/// A connection that does not (a port scanner or health probe that closes at
/// once, another protocol, garbage, a silent or slow peer, one that stops
/// half-way) is closed without a byte of reply, and the server goes on
/// listening: a stranger learns nothing about this side (not its QP, not its
/// memory token) and cannot take the client's place. The server reads up to
/// `max_waiting` connections at once, none for longer than `hello_timeout`,
/// so a silent connection cannot hold up the client behind it; when more
/// arrive, the oldest is dropped. The first connection to deliver a valid
/// endpoint is the peer, and the listening socket is closed then: later
/// clients are refused. The magic and version prove the protocol, not the
/// peer's identity: any program that speaks rcq is served.
///
/// Time budgets. `timeout` is given twice, one after the other:
///  - waiting for the peer: from the first exchange() call until the client
///    is connected (client) or a valid client endpoint has arrived (server).
///    The client tries each address of the server's name in turn and gives
///    each attempt an equal share of what is left, so an address whose SYN is
///    dropped cannot use up the time of the addresses after it; it retries
///    with backoff while the server is not listening yet.
///  - talking to the peer: from the end of the wait, the rest of exchange()
///    and all of barrier() (which waits for the peer's QP to be ready).
/// So a server that waited long for its client still has the whole `timeout`
/// for the barrier. The clock starts at exchange(), not at construction, so
/// opening the device and registering memory in between are not charged.
/// `std::chrono::milliseconds::max()` means no time limit; a timeout of zero
/// or less is refused.
///
/// The server binds and listens in server(), so a busy port is reported at
/// once and a client that connects early waits in the backlog; port() gives
/// the bound port, which is how a caller learns it after asking for port 0.
///
/// Move-only; a moved-from object is closed. Not thread-safe. Host name
/// resolution (getaddrinfo) is not bounded by the deadline.
class tcp {
public:
    /// Marks this type as a handshake policy.
    using rcq_category = category::handshake;

    /// Server: how many connections are read at once while waiting for a
    /// valid client.
    static constexpr std::size_t max_waiting = 16;
    /// Server: the longest a connection may take to deliver its endpoint.
    static constexpr std::chrono::milliseconds hello_timeout = std::chrono::seconds{10};

    /// The server side: binds and listens on `port` now (0: any free port, see
    /// port()); `timeout` bounds the wait for a valid client, then again the
    /// rest of exchange() and barrier().
    static tcp server(std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds{30},
                      std::string bind_address = "0.0.0.0") {
        tcp t(true, std::move(bind_address), port, timeout);
        t.listen();
        return t;
    }

    /// The client side: connects to `host`:`port` when exchange() is called,
    /// retrying with backoff within `timeout`.
    static tcp client(std::string host, std::uint16_t port,
                      std::chrono::milliseconds timeout = std::chrono::seconds{30}) {
        if (port == 0) // connect(2) to port 0 is refused every time: do not retry it for the budget
            throw_invalid("tcp client: port 0 is not a port a server can listen on",
                          "give the port the server listens on (its port() tells, if it asked for 0)");
        return tcp(false, std::move(host), port, timeout);
    }

    /// Takes over; `other` is left closed.
    tcp(tcp&& other) noexcept
        : server_(other.server_), host_(std::move(other.host_)), port_(other.port_),
          timeout_(other.timeout_), wait_(other.wait_), talk_(other.talk_),
          listener_(std::move(other.listener_)), conn_(std::move(other.conn_)),
          peer_(std::move(other.peer_)), auth_(std::move(other.auth_)),
          client_nonce_(other.client_nonce_), server_nonce_(other.server_nonce_),
          closed_(std::exchange(other.closed_, true)) {}

    /// Takes over; `other` is left closed.
    tcp& operator=(tcp&& other) noexcept {
        if (this != &other) {
            server_ = other.server_;
            host_ = std::move(other.host_);
            port_ = other.port_;
            timeout_ = other.timeout_;
            wait_ = other.wait_;
            talk_ = other.talk_;
            listener_ = std::move(other.listener_);
            conn_ = std::move(other.conn_);
            peer_ = std::move(other.peer_);
            auth_ = std::move(other.auth_);
            client_nonce_ = other.client_nonce_;
            server_nonce_ = other.server_nonce_;
            closed_ = std::exchange(other.closed_, true);
        }
        return *this;
    }

    tcp(const tcp&) = delete;
    tcp& operator=(const tcp&) = delete;
    ~tcp() = default; // the descriptors close themselves

    /// Requires the peer to prove it knows `secret`, and proves it in turn;
    /// see the README's section on authentication. Call before exchange().
    /// Both sides must do so, or neither: a side with a secret never talks
    /// to one without.
    ///
    /// Authenticated exchange: the client sends a hello with a fresh nonce;
    /// the server answers with its own nonce and a tag over both (proving it
    /// knows the secret before the client reveals anything); the client sends
    /// its endpoint with a tag over both nonces and the endpoint, and the
    /// server answers the same way. A connection whose messages do not verify
    /// is dropped like any stranger's, and the server goes on waiting. Each
    /// side's go-ahead in barrier() then carries a tag over both nonces and
    /// its direction.
    void authenticate(shared_secret secret) { auth_.set_secret(std::move(secret)); }

    /// Lets exchange() send an endpoint that carries a memory token without
    /// authentication; see the README.
    void allow_memory_without_secret() noexcept { auth_.allow_memory_without_secret(); }

    /// Client: connects, sends `local`, then reads the server's endpoint.
    /// Server: waits for a connection that delivers a valid endpoint (see the
    /// class comment), then sends `local`. Returns the peer's endpoint.
    /// Throws rcq::error naming the role, the address and what to check; a
    /// foreign server is detected from the first bytes it sends. An endpoint
    /// with a memory token is refused (EACCES) before anything is sent when
    /// there is no secret, unless allow_memory_without_secret() was called.
    endpoint exchange(const endpoint& local) {
        if (closed_) throw_invalid(role() + ": used after close()");
        if (conn_)
            throw_invalid(role() + ": exchange() called twice",
                          "call exchange() once, then barrier()");
        auth_.check_offer(local, role());
        auto out = encode(local);
        if (server_) {
            auto peer = wait_for_client();
            detail::write_all(conn_.get(), out, *talk_, doing("sending our endpoint to"));
            if (auto* secret = auth_.secret()) {
                auto tag = detail::tcp_server_endpoint_tag(*secret, client_nonce_, server_nonce_, out);
                detail::write_all(conn_.get(), std::as_bytes(std::span(tag)), *talk_,
                                  doing("sending our endpoint's tag to"));
            }
            return peer;
        }
        connect_with_retry();
        const auto& dl = *talk_;
        if (auth_.secret()) client_authenticate(dl);
        detail::write_all(conn_.get(), out, dl, doing("sending our endpoint to"));
        if (auto* secret = auth_.secret()) {
            auto tag = secret->tag({"rcq tcp client endpoint", detail::as_text(client_nonce_),
                                    detail::as_text(server_nonce_), detail::as_text(out)});
            detail::write_all(conn_.get(), std::as_bytes(std::span(tag)), dl,
                              doing("sending our endpoint's tag to"));
        }

        std::array<std::byte, endpoint_wire_size> in{};
        auto header = std::span(in).first(detail::endpoint_header_size);
        detail::read_exact(conn_.get(), header, dl, doing("receiving the " + peer_role() + "'s endpoint from"));
        try {
            detail::check_endpoint_header(header);
        } catch (const error& e) {
            throw error(e.code(), role() + ", peer " + peer_ + ": " + e.step(), e.hint());
        }
        detail::read_exact(conn_.get(), std::span(in).subspan(detail::endpoint_header_size), dl,
                           doing("receiving the rest of the " + peer_role() + "'s endpoint from"));
        if (auto* secret = auth_.secret()) {
            shared_secret::tag_type tag{};
            detail::read_exact(conn_.get(), std::as_writable_bytes(std::span(tag)), dl,
                               doing("receiving the tag of the server's endpoint from"));
            if (!secret->verify(tag, {"rcq tcp server endpoint", detail::as_text(client_nonce_),
                                      detail::as_text(server_nonce_), detail::as_text(in)}))
                throw_invalid(role() + ": the endpoint from " + peer_ + " does not carry a valid tag",
                              "it was changed on the way, or the server's secret differs from ours",
                              EACCES);
        }
        return decode(in); // cannot fail: the header was checked and the size is exact
    }

    /// The go-ahead: sends a message ("RCQG" and a length: 8 bytes, or 40
    /// with its tag when authenticated) and waits for the peer's, under the
    /// handshake deadline. Call it once the QP is in
    /// RTS and its receives are posted; when it returns, the peer has done the
    /// same, so a SEND from either side finds a posted RECV. Authenticated,
    /// each go-ahead carries a tag bound to this exchange's nonces and to its
    /// direction, and one that does not verify (forged, replayed from another
    /// exchange, or our own sent back) is refused with EACCES.
    void barrier() {
        if (closed_) throw_invalid(role() + ": used after close()");
        if (!conn_)
            throw_invalid(role() + ": barrier() called before exchange()",
                          "call exchange() once, then barrier()");
        detail::swap_tcp_go_ahead({.fd = conn_.get(),
                                   .server = server_,
                                   .secret = auth_.secret(),
                                   .client_nonce = client_nonce_,
                                   .server_nonce = server_nonce_,
                                   .who = role(),
                                   .peer = peer_,
                                   .budget = budget_text()},
                                  *talk_);
    }

    /// Closes the sockets; idempotent. Later exchange()/barrier() calls throw.
    void close() noexcept {
        listener_.reset();
        conn_.reset();
        closed_ = true;
    }

    /// Whether this is the server side.
    bool is_server() const noexcept { return server_; }

    /// A liveness signal, without blocking: whether the peer has closed the
    /// connection, which stays open after barrier() until this object is
    /// closed or destroyed. The peer's kernel closes it when the peer's
    /// process ends for any reason (exit, crash, kill -9), so a survivor
    /// learns of it at once; a peer whose whole machine stopped sends nothing
    /// and is seen only by the RDMA transport's retry limit. False while not
    /// connected.
    bool peer_closed() const noexcept { return conn_ && detail::peer_closed(conn_.get()); }

    /// The client's server address family when the host is a numeric
    /// address, which lets the GID choice match it; AF_UNSPEC otherwise.
    int peer_family() const noexcept {
        if (server_) return AF_UNSPEC;
        in6_addr v6{};
        in_addr v4{};
        if (::inet_pton(AF_INET, host_.c_str(), &v4) == 1) return AF_INET;
        if (::inet_pton(AF_INET6, host_.c_str(), &v6) == 1) return AF_INET6;
        return AF_UNSPEC;
    }

    /// For the narration: "tcp server on port 18515", "tcp client to host:port".
    std::string describe() const {
        return server_ ? "tcp server on port " + std::to_string(port_)
                       : "tcp client to " + host_ + ":" + std::to_string(port_);
    }

    /// Server: the port it is bound to (the kernel's choice when 0 was asked).
    /// Client: the server's port it connects to.
    std::uint16_t port() const noexcept { return port_; }

private:

    tcp(bool server, std::string host, std::uint16_t port, std::chrono::milliseconds timeout)
        : server_(server), host_(std::move(host)), port_(port), timeout_(timeout) {
        if (timeout_ <= std::chrono::milliseconds::zero())
            throw_invalid(role() + ": the timeout must be positive (got " +
                              std::to_string(timeout_.count()) + " ms)",
                          "for no time limit, give std::chrono::milliseconds::max()");
    }

    std::string role() const { return server_ ? "tcp server" : "tcp client"; }
    std::string peer_role() const { return server_ ? "client" : "server"; }

    // "30 s" or "500 ms", for messages.
    std::string budget_text() const { return detail::budget_text(timeout_); }

    static std::string host_port(const std::string& host, std::uint16_t port) {
        return detail::host_port(host, port);
    }

    // The step description that socket errors start with.
    std::string doing(const std::string& action) const {
        return role() + ": " + action + " " + peer_ + " (budget " + budget_text() + ")";
    }

    // The wait for the peer; starts at the first exchange() call.
    const deadline& wait_budget() {
        if (!wait_) wait_ = deadline::after(timeout_);
        return *wait_;
    }

    // Called once the peer is there: the rest has a budget of its own.
    void connected() {
        talk_ = deadline::after(timeout_);
        detail::send_at_once(conn_.get());
    }

    detail::addrinfo_list resolve(const char* host, int flags, int& gai_error) const {
        return detail::resolve_tcp(host, port_, flags, gai_error);
    }

    void listen() {
        // Room in the backlog for the connections read at once while waiting.
        auto bound = detail::tcp_listen(host_, port_, static_cast<int>(max_waiting), role());
        port_ = bound.port;
        listener_ = std::move(bound.fd);
    }


    // Client, authenticated: sends the hello, checks the server's challenge.
    void client_authenticate(const deadline& dl) {
        client_nonce_ = detail::fresh_nonce();
        auto hello = detail::tcp_auth_message<detail::tcp_hello_size>(client_nonce_);
        detail::write_all(conn_.get(), hello, dl, doing("sending our hello to"));
        std::array<std::byte, detail::tcp_challenge_size> in{};
        auto header = std::span(in).first(8);
        detail::read_exact(conn_.get(), header, dl, doing("receiving the server's challenge from"));
        try {
            detail::check_arriving_auth_message(header, in.size());
        } catch (const error& e) {
            throw error(e.code(), role() + ", peer " + peer_ + ": " + e.step(), e.hint());
        }
        detail::read_exact(conn_.get(), std::span(in).subspan(8), dl,
                           doing("receiving the rest of the server's challenge from"));
        auto payload = std::span(reinterpret_cast<const std::uint8_t*>(in.data()) + 8, in.size() - 8);
        std::copy_n(payload.begin(), server_nonce_.size(), server_nonce_.begin());
        if (!auth_.secret()->verify(payload.subspan(server_nonce_.size()),
                                    {"rcq tcp challenge", detail::as_text(client_nonce_),
                                     detail::as_text(server_nonce_)}))
            throw_invalid(role() + ": the server at " + peer_ + " failed to authenticate",
                          "it does not know our shared secret: give both sides the same one", EACCES);
    }

    // See the class comment: reads every connection that arrives, each by
    // its own deadline, until one has delivered a valid endpoint. Nothing is
    // ever written to the others.
    endpoint wait_for_client() {
        const auto& dl = wait_budget();
        const auto what = role() + ": waiting for a client on port " + std::to_string(port_);
        const auto* secret = auth_.secret();
        std::vector<detail::arriving_client> waiting;
        std::size_t refused = 0;
        std::string last_refusal;
        auto refuse = [&](std::size_t i, const std::string& why) {
            ++refused;
            last_refusal = waiting[i].address() + " " + why;
            waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(i));
        };
        std::vector<pollfd> fds;
        for (;;) {
            if (dl.expired()) no_valid_client(refused, waiting.size(), last_refusal);
            for (std::size_t i = waiting.size(); i-- > 0;)
                if (waiting[i].until().expired()) refuse(i, waiting[i].expiry_text(secret, hello_timeout));

            fds.assign(1, pollfd{listener_.get(), POLLIN, 0});
            int wait_ms = dl.remaining_ms();
            for (const auto& w : waiting) {
                fds.push_back(pollfd{w.fd(), POLLIN, 0});
                wait_ms = std::min(wait_ms, w.until().remaining_ms());
            }
            if (::poll(fds.data(), fds.size(), wait_ms) < 0) {
                if (errno == EINTR) continue;
                throw_error(what + ": poll");
            }

            // From the back, so that refusing one keeps the others' indices.
            for (std::size_t i = waiting.size(); i-- > 0;) {
                if (fds[i + 1].revents == 0) continue;
                auto& w = waiting[i];
                bool complete = false;
                try {
                    complete = w.on_readable(secret);
                } catch (const error& e) {
                    refuse(i, e.step());
                    continue;
                }
                if (complete) {
                    conn_ = w.take_fd();
                    peer_ = w.address();
                    client_nonce_ = w.client_nonce();
                    server_nonce_ = w.server_nonce();
                    listener_.reset(); // one peer only; later clients are refused
                    connected();
                    return w.peer();
                }
            }

            if (fds[0].revents == 0) continue;
            detail::accept_all(listener_.get(), what, [&](detail::unique_fd fd, std::string address) {
                if (waiting.size() == max_waiting)
                    refuse(0, "was dropped unread: " + std::to_string(max_waiting) +
                                  " newer connections were waiting");
                auto own = deadline::after(hello_timeout);
                waiting.emplace_back(std::move(fd), std::move(address), deadline(std::min(own.at(), dl.at())));
            });
        }
    }

    [[noreturn]] void no_valid_client(std::size_t refused, std::size_t still_sending,
                                      const std::string& last_refusal) const {
        auto port = std::to_string(port_);
        if (refused == 0 && still_sending == 0)
            throw_error(role() + ": no client connected to port " + port + " within " + budget_text(),
                        "start the client with this host's address and port " + port +
                            ", or give the server a longer timeout",
                        ETIMEDOUT);
        std::string summary;
        if (refused != 0)
            summary = std::to_string(refused) + " connection(s) refused, the last: " + last_refusal;
        if (still_sending != 0)
            summary += (summary.empty() ? "" : "; ") + std::to_string(still_sending) +
                       " connection(s) still sending an incomplete endpoint";
        throw_error(role() + ": no rcq client on port " + port + " within " + budget_text() + " (" +
                        summary + ")",
                    "the client must be an rcq program of the same release (its first message is "
                    "its endpoint, starting \"RCQE\"); start it with this host's address and port " +
                        port + ", or give the server a longer timeout",
                    ETIMEDOUT);
    }

    // Errors that may go away if we wait: the server not listening yet, a
    // route or name server still coming up.
    static bool worth_retrying(int err) {
        return err == ECONNREFUSED || err == ETIMEDOUT || err == EHOSTUNREACH || err == ENETUNREACH ||
               err == ENETDOWN || err == EHOSTDOWN || err == ECONNRESET || err == ECONNABORTED ||
               err == EAGAIN || err == EINTR;
    }

    // One nonblocking connect to one address, bounded by `dl`; 0 or an errno.
    int try_connect(const addrinfo& ai, const deadline& dl) {
        detail::unique_fd fd(
            ::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol));
        if (!fd) return errno;
        if (::connect(fd.get(), ai.ai_addr, ai.ai_addrlen) != 0) {
            // EINTR: the connection attempt goes on in the background.
            if (errno != EINPROGRESS && errno != EINTR) return errno;
            if (!detail::wait_for(fd.get(), POLLOUT, dl, role() + ": connecting to " + host_port(host_, port_)))
                return ETIMEDOUT;
            int err = 0;
            socklen_t len = sizeof err;
            if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
            if (err != 0) return err;
        }
        conn_ = std::move(fd);
        return 0;
    }

    void connect_with_retry() {
        const auto& dl = wait_budget();
        auto where = host_port(host_, port_);
        peer_ = where;
        std::chrono::milliseconds backoff{50};
        std::string last_error = "none";
        int last_errno = 0;
        for (;;) {
            bool retry = false;
            int gai = 0;
            auto list = resolve(host_.c_str(), 0, gai);
            if (!list) {
                if (gai != EAI_AGAIN)
                    throw_invalid(role() + ": cannot resolve \"" + host_ + "\" (" + ::gai_strerror(gai) + ")",
                                  "give the server's IP address or a host name this machine can resolve");
                last_error = ::gai_strerror(gai);
                retry = true;
            }
            std::size_t addresses_left = 0;
            for (const addrinfo* ai = list.get(); ai; ai = ai->ai_next) ++addresses_left;
            for (const addrinfo* ai = list.get(); ai; ai = ai->ai_next, --addresses_left) {
                int err = try_connect(*ai, detail::connect_attempt_deadline(dl, addresses_left));
                if (err == 0) {
                    connected();
                    return;
                }
                last_error = std::generic_category().message(err);
                last_errno = err;
                retry = retry || worth_retrying(err);
            }
            if (!retry)
                throw_error(role() + ": cannot connect to " + where + " (" + last_error + ")",
                            "check the server's address, and that this host can reach it", last_errno);
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(dl.at() - deadline::clock::now());
            if (left <= std::chrono::milliseconds::zero())
                throw_error(role() + ": could not connect to " + where + " within " + budget_text() +
                                " (last error: " + last_error + ")",
                            "is the server running and listening on that port? Start it first, or give "
                            "the client a longer timeout",
                            ETIMEDOUT);
            std::this_thread::sleep_for(std::min(backoff, left));
            backoff = std::min(backoff * 2, std::chrono::milliseconds{1000});
        }
    }

    bool server_;
    std::string host_; // server: bind address; client: the server's host
    std::uint16_t port_;
    std::chrono::milliseconds timeout_;
    std::optional<deadline> wait_;     // the wait for the peer, from the first exchange()
    std::optional<deadline> talk_;     // the rest, from the end of the wait
    detail::unique_fd listener_;       // server, until the peer is accepted
    detail::unique_fd conn_;           // the connection to the peer
    std::string peer_;                 // the peer's address, for messages
    detail::handshake_auth auth_;
    detail::auth_nonce client_nonce_{}; // authenticated: this exchange's nonces
    detail::auth_nonce server_nonce_{};
    bool closed_ = false;
};

} // namespace rcq::handshake
