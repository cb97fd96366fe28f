// rcq/handshake/tcp.hpp - swapping endpoints with the peer over one TCP
// connection: the classic RDMA out-of-band handshake.
#pragma once

#include <rcq/category.hpp>
#include <rcq/deadline.hpp>
#include <rcq/detail/budget.hpp>
#include <rcq/detail/socket.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>

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

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace rcq::handshake {

/// The TCP handshake transport. One side is the server (listens, accepts a
/// single peer), the other the client (connects, retrying while the server is
/// not up yet). Each side then calls exchange() to swap endpoints and, once
/// its QP is in RTS with receives posted, barrier() so that neither side
/// sends before the other can receive.
///
/// Time budget: `timeout` covers the whole handshake. Its clock starts at the
/// first exchange() or barrier() call, not at construction, so that the time
/// spent opening the device and registering memory in between is not charged
/// to it; every later step (connect or accept, each read and write, the
/// barrier) shares that one deadline.
///
/// The server binds and listens in server(), so a busy port is reported at
/// once and a client that connects early waits in the backlog; port() gives
/// the bound port, which is how a caller learns it after asking for port 0.
/// The listening socket is closed as soon as the one peer is accepted: a
/// second client is refused, and the first connection to arrive is the peer.
///
/// Move-only; a moved-from object is closed. Not thread-safe. Host name
/// resolution (getaddrinfo) is not bounded by the deadline.
class tcp {
public:
    /// Marks this type as a handshake policy.
    using rcq_category = category::handshake;

    /// The server side: binds and listens on `port` now (0: any free port, see
    /// port()); `timeout` bounds the exchange and the barrier together.
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
        return tcp(false, std::move(host), port, timeout);
    }

    /// Takes over; `other` is left closed.
    tcp(tcp&& other) noexcept
        : server_(other.server_), host_(std::move(other.host_)), port_(other.port_),
          timeout_(other.timeout_), deadline_(other.deadline_),
          listener_(std::move(other.listener_)), conn_(std::move(other.conn_)),
          peer_(std::move(other.peer_)), closed_(std::exchange(other.closed_, true)) {}

    /// Takes over; `other` is left closed.
    tcp& operator=(tcp&& other) noexcept {
        if (this != &other) {
            server_ = other.server_;
            host_ = std::move(other.host_);
            port_ = other.port_;
            timeout_ = other.timeout_;
            deadline_ = other.deadline_;
            listener_ = std::move(other.listener_);
            conn_ = std::move(other.conn_);
            peer_ = std::move(other.peer_);
            closed_ = std::exchange(other.closed_, true);
        }
        return *this;
    }

    tcp(const tcp&) = delete;
    tcp& operator=(const tcp&) = delete;
    ~tcp() = default; // the descriptors close themselves

    /// Connects (client) or accepts the peer (server) if not done yet, sends
    /// `local` and returns the peer's endpoint. Both sides write before they
    /// read: the messages are far smaller than any socket buffer, so neither
    /// write can block on the other side's read. Throws rcq::error naming the
    /// role, the address and what to check; a foreign peer is detected from
    /// the first 8 bytes it sends.
    endpoint exchange(const endpoint& local) {
        ensure_connected();
        const auto& dl = budget();
        auto out = encode(local);
        detail::write_all(conn_.get(), out, dl, doing("sending our endpoint to"));

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
        return decode(in); // cannot fail: the header was checked and the size is exact
    }

    /// The go-ahead: sends a fixed 8-byte message and waits for the peer's,
    /// under the handshake deadline. Call it once the QP is in RTS and its
    /// receives are posted; when it returns, the peer has done the same, so a
    /// SEND from either side finds a posted RECV.
    void barrier() {
        ensure_connected();
        const auto& dl = budget();
        detail::write_all(conn_.get(), go_ahead, dl, doing("sending the go-ahead to"));
        std::array<std::byte, go_ahead.size()> in{};
        detail::read_exact(conn_.get(), in, dl, doing("waiting for the " + peer_role() + "'s go-ahead from"));
        if (in != go_ahead) {
            std::string got;
            for (auto b : in) got += hex_byte(b);
            throw_invalid(role() + ": expected the go-ahead \"RCQG\" 00000000 from " + peer_ +
                              ", got 0x" + got,
                          "both sides must call exchange() and then barrier(), in that order",
                          EPROTO);
        }
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
    bool peer_closed() const noexcept {
        if (!conn_) return false;
        pollfd p{conn_.get(), POLLIN | POLLRDHUP, 0};
        if (::poll(&p, 1, 0) <= 0) return false;
        if (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) return true;
        std::byte b{};
        const ssize_t n = ::recv(conn_.get(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }

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
    static constexpr std::array<std::byte, 8> go_ahead{std::byte{'R'}, std::byte{'C'}, std::byte{'Q'},
                                                       std::byte{'G'}, std::byte{0},   std::byte{0},
                                                       std::byte{0},   std::byte{0}};

    struct addrinfo_deleter {
        void operator()(addrinfo* list) const noexcept { ::freeaddrinfo(list); }
    };
    using addrinfo_list = std::unique_ptr<addrinfo, addrinfo_deleter>;

    tcp(bool server, std::string host, std::uint16_t port, std::chrono::milliseconds timeout)
        : server_(server), host_(std::move(host)), port_(port), timeout_(timeout) {}

    std::string role() const { return server_ ? "tcp server" : "tcp client"; }
    std::string peer_role() const { return server_ ? "client" : "server"; }

    static std::string hex_byte(std::byte b) {
        static constexpr char digits[] = "0123456789abcdef";
        auto v = std::to_integer<unsigned>(b);
        return {digits[v >> 4], digits[v & 0xf]};
    }

    // "30 s" or "500 ms", for messages.
    std::string budget_text() const { return detail::budget_text(timeout_); }

    static std::string host_port(const std::string& host, std::uint16_t port) {
        bool v6 = host.find(':') != std::string::npos;
        return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
    }

    // The step description that socket errors start with.
    std::string doing(const std::string& action) const {
        return role() + ": " + action + " " + peer_ + " (budget " + budget_text() + ")";
    }

    const deadline& budget() { return detail::budget(deadline_, timeout_); }

    addrinfo_list resolve(const char* host, int flags, int& gai_error) const {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = flags | AI_NUMERICSERV;
        addrinfo* list = nullptr;
        auto service = std::to_string(port_);
        gai_error = ::getaddrinfo(host, service.c_str(), &hints, &list);
        return addrinfo_list(gai_error == 0 ? list : nullptr);
    }

    void listen() {
        int gai = 0;
        auto list = resolve(host_.c_str(), AI_PASSIVE, gai);
        if (!list)
            throw_invalid(role() + ": cannot use bind address \"" + host_ + "\" (" + ::gai_strerror(gai) + ")",
                          "give a local address: 0.0.0.0 (all IPv4), :: (IPv4 and IPv6) or the "
                          "address of this host's RoCE interface");
        const addrinfo* ai = list.get();
        detail::unique_fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                                      ai->ai_protocol));
        if (!fd) throw_error(role() + ": socket()");
        // A server restarted right after a run must be able to bind again
        // while the old connection lingers in TIME_WAIT.
        int one = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
            int err = errno;
            auto where = host_port(host_, port_);
            if (err == EADDRINUSE)
                throw_error(role() + ": cannot listen on " + where,
                            "port " + std::to_string(port_) +
                                " is already in use (an earlier run still going?); pick another port "
                                "with -p, on both sides",
                            err);
            throw_error(role() + ": cannot bind to " + where,
                        err == EADDRNOTAVAIL ? "that address is not on this host" : "", err);
        }
        if (::listen(fd.get(), 4) != 0) throw_error(role() + ": listen on " + host_port(host_, port_));
        sockaddr_storage bound{};
        socklen_t len = sizeof bound;
        if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0)
            throw_error(role() + ": getsockname");
        port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                  : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
        listener_ = std::move(fd);
    }

    static std::string address_of(const sockaddr_storage& addr) {
        char text[INET6_ADDRSTRLEN] = "?";
        if (addr.ss_family == AF_INET6) {
            auto& a = reinterpret_cast<const sockaddr_in6&>(addr);
            ::inet_ntop(AF_INET6, &a.sin6_addr, text, sizeof text);
            return host_port(text, ntohs(a.sin6_port));
        }
        auto& a = reinterpret_cast<const sockaddr_in&>(addr);
        ::inet_ntop(AF_INET, &a.sin_addr, text, sizeof text);
        return host_port(text, ntohs(a.sin_port));
    }

    void ensure_connected() {
        if (closed_) throw_invalid(role() + ": used after close()");
        if (conn_) return;
        if (server_)
            accept_one();
        else
            connect_with_retry();
        // Handshake messages are tiny and each one is waited for: send them now.
        int one = 1;
        ::setsockopt(conn_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }

    void accept_one() {
        const auto& dl = budget();
        auto what = role() + ": waiting for a client on port " + std::to_string(port_);
        for (;;) {
            sockaddr_storage addr{};
            socklen_t len = sizeof addr;
            int fd = ::accept4(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len, SOCK_CLOEXEC);
            if (fd >= 0) {
                conn_.reset(fd);
                peer_ = address_of(addr);
                listener_.reset(); // one peer only; stop accepting at once
                return;
            }
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK) {
                if (!detail::wait_for(listener_.get(), POLLIN, dl, what))
                    throw_error(role() + ": no client connected to port " + std::to_string(port_) +
                                    " within " + budget_text(),
                                "start the client with this host's address and port " +
                                    std::to_string(port_) + ", or give the server a longer timeout",
                                ETIMEDOUT);
                continue;
            }
            // Errors of a connection that died in the backlog, and signals:
            // accept(2) asks to simply try again.
            if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == ENETDOWN ||
                err == ENOPROTOOPT || err == EHOSTDOWN || err == ENONET || err == EHOSTUNREACH ||
                err == EOPNOTSUPP || err == ENETUNREACH)
                continue;
            throw_error(what + ": accept", {}, err);
        }
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
        const auto& dl = budget();
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
            for (const addrinfo* ai = list.get(); ai; ai = ai->ai_next) {
                int err = try_connect(*ai, dl);
                if (err == 0) return;
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
    std::optional<deadline> deadline_; // set on first use, see the class comment
    detail::unique_fd listener_;       // server, until the peer is accepted
    detail::unique_fd conn_;           // the connection to the peer
    std::string peer_;                 // the peer's address, for messages
    bool closed_ = false;
};

} // namespace rcq::handshake
