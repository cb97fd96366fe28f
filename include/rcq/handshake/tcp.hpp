// rcq/handshake/tcp.hpp - swapping endpoints with the peer over one TCP
// connection: the classic RDMA out-of-band handshake.
#pragma once

#include <rcq/config.hpp>
#include <rcq/category.hpp>
#include <rcq/deadline.hpp>
#include <rcq/detail/auth.hpp>
#include <rcq/detail/socket.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/secret.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include <netdb.h>

namespace rcq::detail {

/// The deadline of one connect attempt when `left` addresses (this one
/// included) remain to be tried by `dl`: an equal share of the time left, and
/// for the last address all of it.
RCQ_DECL deadline connect_attempt_deadline(const deadline& dl, std::size_t left);

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
    RCQ_DECL static tcp server(std::uint16_t port,
                               std::chrono::milliseconds timeout = std::chrono::seconds{30},
                               std::string bind_address = "0.0.0.0");

    /// The client side: connects to `host`:`port` when exchange() is called,
    /// retrying with backoff within `timeout`.
    RCQ_DECL static tcp client(std::string host, std::uint16_t port,
                               std::chrono::milliseconds timeout = std::chrono::seconds{30});

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
    RCQ_DECL endpoint exchange(const endpoint& local);

    /// The go-ahead: sends a message ("RCQG" and a length: 8 bytes, or 40
    /// with its tag when authenticated) and waits for the peer's, under the
    /// handshake deadline. Call it once the QP is in
    /// RTS and its receives are posted; when it returns, the peer has done the
    /// same, so a SEND from either side finds a posted RECV. Authenticated,
    /// each go-ahead carries a tag bound to this exchange's nonces and to its
    /// direction, and one that does not verify (forged, replayed from another
    /// exchange, or our own sent back) is refused with EACCES.
    RCQ_DECL void barrier();

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
    RCQ_DECL int peer_family() const noexcept;

    /// For the narration: "tcp server on port 18515", "tcp client to host:port".
    RCQ_DECL std::string describe() const;

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

    RCQ_DECL std::string role() const;
    RCQ_DECL std::string peer_role() const;

    // "30 s" or "500 ms", for messages.
    RCQ_DECL std::string budget_text() const;

    // The step description that socket errors start with.
    RCQ_DECL std::string doing(const std::string& action) const;

    // The wait for the peer; starts at the first exchange() call.
    const deadline& wait_budget() {
        if (!wait_) wait_ = deadline::after(timeout_);
        return *wait_;
    }

    // Called once the peer is there: the rest has a budget of its own.
    RCQ_DECL void connected();

    RCQ_DECL void listen();

    // Client, authenticated: sends the hello, checks the server's challenge.
    RCQ_DECL void client_authenticate(const deadline& dl);

    // See the class comment: reads every connection that arrives, each by
    // its own deadline, until one has delivered a valid endpoint. Nothing is
    // ever written to the others.
    RCQ_DECL endpoint wait_for_client();

    [[noreturn]] RCQ_DECL void no_valid_client(std::size_t refused, std::size_t still_sending,
                                               const std::string& last_refusal) const;

    // Errors that may go away if we wait: the server not listening yet, a
    // route or name server still coming up.
    RCQ_DECL static bool worth_retrying(int err);

    // One nonblocking connect to one address, bounded by `dl`; 0 or an errno.
    RCQ_DECL int try_connect(const addrinfo& ai, const deadline& dl);

    RCQ_DECL void connect_with_retry();

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

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/handshake/tcp.ipp>
#endif
