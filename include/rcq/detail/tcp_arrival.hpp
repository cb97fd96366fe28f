// rcq/detail/tcp_arrival.hpp - the server side of the TCP handshake's first
// stage, shared by handshake::tcp (one client) and handshake::tcp_listener
// (many): a listening socket, connections taken from its backlog, and the
// check of what each connection sends until it has proved it speaks rcq's
// protocol (and, with a secret, that it knows the secret).
#pragma once

#include <rcq/deadline.hpp>
#include <rcq/detail/auth.hpp>
#include <rcq/detail/socket.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/secret.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <utility>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace rcq::detail {

/// Checks the first bytes of an endpoint message as they arrive, so that a
/// foreign peer is refused at its first wrong field rather than after a full
/// message: throws rcq::error (EPROTO) for a wrong magic once 4 bytes are
/// there, a wrong version or length once 8 are. Returns true once all
/// endpoint_wire_size bytes are there; `got` must not hold more.
inline bool check_arriving_endpoint(std::span<const std::byte> got) {
    if (got.size() >= endpoint_header_size)
        check_endpoint_header(got.first(endpoint_header_size));
    else if (got.size() >= endpoint_magic.size() &&
             !std::equal(endpoint_magic.begin(), endpoint_magic.end(), got.begin()))
        check_endpoint_header(got.first(endpoint_magic.size())); // throws "bad magic"
    return got.size() == endpoint_wire_size;
}

// The authenticated TCP exchange's own messages: magic "RCQA", version (u16)
// and payload length (u16), big-endian, then the payload.
inline constexpr std::array<std::byte, 4> tcp_auth_magic{std::byte{'R'}, std::byte{'C'},
                                                         std::byte{'Q'}, std::byte{'A'}};
inline constexpr std::uint16_t tcp_auth_version = 1;
// The client's hello: its nonce. The server's challenge: its nonce and a tag.
inline constexpr std::size_t tcp_hello_size = 8 + shared_secret::tag_size;
inline constexpr std::size_t tcp_challenge_size = 8 + 2 * shared_secret::tag_size;

template <std::size_t N>
std::array<std::byte, N> tcp_auth_message(std::span<const std::uint8_t> payload) {
    std::array<std::byte, N> out{};
    std::copy(tcp_auth_magic.begin(), tcp_auth_magic.end(), out.begin());
    wire_field<std::uint16_t>::put(tcp_auth_version, out.data() + 4);
    wire_field<std::uint16_t>::put(static_cast<std::uint16_t>(N - 8), out.data() + 6);
    std::copy(payload.begin(), payload.end(), reinterpret_cast<std::uint8_t*>(out.data()) + 8);
    return out;
}

/// Like check_arriving_endpoint, for an authenticated exchange's message of
/// `size` bytes (a hello or a challenge): throws rcq::error (EPROTO) at the
/// first wrong field, with a hint when the peer is an rcq program that does
/// not authenticate; returns true once `size` bytes are there.
inline bool check_arriving_auth_message(std::span<const std::byte> got, std::size_t size) {
    auto fail = [](const std::string& what, const std::string& hint) {
        throw_invalid("authenticated handshake: " + what, hint, EPROTO);
    };
    if (got.size() >= 4 && !std::equal(tcp_auth_magic.begin(), tcp_auth_magic.end(), got.begin())) {
        if (std::equal(endpoint_magic.begin(), endpoint_magic.end(), got.begin()))
            fail("the peer sent its endpoint without authenticating",
                 "this side has a shared secret and the peer has none: give both sides the same secret");
        check_endpoint_header(got.first(4)); // throws "bad magic", naming what came
    }
    if (got.size() >= 8) {
        auto version = wire_field<std::uint16_t>::get(got.data() + 4);
        auto length = wire_field<std::uint16_t>::get(got.data() + 6);
        if (version != tcp_auth_version)
            fail("version " + std::to_string(version) + " not supported (this build speaks version " +
                     std::to_string(tcp_auth_version) + ")",
                 "build both sides with the same rcq release");
        if (length != size - 8)
            fail("payload length " + std::to_string(length) + ", expected " + std::to_string(size - 8),
                 "both sides must be the same rcq release");
    }
    return got.size() == size;
}

/// The tag the server sends after its endpoint `out` in an authenticated
/// exchange, over both nonces and the endpoint's bytes.
inline shared_secret::tag_type tcp_server_endpoint_tag(const shared_secret& secret,
                                                       const auth_nonce& client_nonce,
                                                       const auth_nonce& server_nonce,
                                                       std::span<const std::byte> out) {
    return secret.tag({"rcq tcp server endpoint", as_text(client_nonce), as_text(server_nonce),
                       as_text(out)});
}

/// "host:port", with brackets around an IPv6 address.
inline std::string host_port(const std::string& host, std::uint16_t port) {
    bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

/// A peer's socket address as host_port text.
inline std::string address_of(const sockaddr_storage& addr) {
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

struct addrinfo_deleter {
    void operator()(addrinfo* list) const noexcept { ::freeaddrinfo(list); }
};
/// The list getaddrinfo(3) gives, freed with it.
using addrinfo_list = std::unique_ptr<addrinfo, addrinfo_deleter>;

/// getaddrinfo for a TCP stream to `host`:`port`; empty on failure, with the
/// EAI_* code in `gai_error`.
inline addrinfo_list resolve_tcp(const char* host, std::uint16_t port, int flags, int& gai_error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags | AI_NUMERICSERV;
    addrinfo* list = nullptr;
    auto service = std::to_string(port);
    gai_error = ::getaddrinfo(host, service.c_str(), &hints, &list);
    return addrinfo_list(gai_error == 0 ? list : nullptr);
}

/// A nonblocking listening socket and the port it is bound to.
struct tcp_listening {
    unique_fd fd;
    std::uint16_t port = 0;
};

/// Binds to `host`:`port` (0: any free port) and listens with room for
/// `backlog` connections. Errors start with `role` and say what to do.
inline tcp_listening tcp_listen(const std::string& host, std::uint16_t port, int backlog,
                                const std::string& role) {
    int gai = 0;
    auto list = resolve_tcp(host.c_str(), port, AI_PASSIVE, gai);
    if (!list)
        throw_invalid(role + ": cannot use bind address \"" + host + "\" (" + ::gai_strerror(gai) + ")",
                      "give a local address: 0.0.0.0 (all IPv4), :: (IPv4 and IPv6) or the "
                      "address of this host's RoCE interface");
    const addrinfo* ai = list.get();
    unique_fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) throw_error(role + ": socket()");
    // A server restarted right after a run must be able to bind again
    // while the old connection lingers in TIME_WAIT.
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
        int err = errno;
        auto where = host_port(host, port);
        if (err == EADDRINUSE)
            throw_error(role + ": cannot listen on " + where,
                        "port " + std::to_string(port) +
                            " is already in use (an earlier run still going?); pick another port "
                            "with -p, on both sides",
                        err);
        throw_error(role + ": cannot bind to " + where,
                    err == EADDRNOTAVAIL ? "that address is not on this host" : "", err);
    }
    if (::listen(fd.get(), backlog) != 0) throw_error(role + ": listen on " + host_port(host, port));
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0)
        throw_error(role + ": getsockname");
    auto bound_port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    return {std::move(fd), bound_port};
}

/// Errors of a connection that died in the backlog, and signals: accept(2)
/// asks to simply try again.
inline bool accept_again(int err) {
    return err == EINTR || err == ECONNABORTED || err == EPROTO || err == ENETDOWN ||
           err == ENOPROTOOPT || err == EHOSTDOWN || err == ENONET || err == EHOSTUNREACH ||
           err == EOPNOTSUPP || err == ENETUNREACH;
}

/// Takes every connection the backlog of the nonblocking `listening` socket
/// holds, calling `take(unique_fd, address)` for each. `what` starts the
/// error of a failure that is not the connection's own (EMFILE, say).
template <class Take>
void accept_all(int listening, const std::string& what, Take&& take) {
    for (;;) {
        sockaddr_storage addr{};
        socklen_t len = sizeof addr;
        int fd = ::accept4(listening, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK) return;
            if (accept_again(err)) continue;
            throw_error(what + ": accept", {}, err);
        }
        take(unique_fd(fd), address_of(addr));
    }
}

/// Turns Nagle's algorithm off: handshake messages are tiny and each one is
/// waited for, so they go out at once.
inline void send_at_once(int fd) noexcept {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/// One connection to a server, read until it has delivered a valid endpoint
/// (and, with a secret, authenticated itself). The server writes nothing to
/// it but, with a secret, the challenge that answers a valid hello: a
/// stranger learns nothing. Move-only, like the descriptor it owns.
class arriving_client {
public:
    /// Reads `fd` (from `address`) until `until`.
    arriving_client(unique_fd fd, std::string address, deadline until)
        : fd_(std::move(fd)), address_(std::move(address)), until_(until) {}

    /// The connection.
    int fd() const noexcept { return fd_.get(); }
    /// Gives the connection up, once the endpoint has arrived.
    unique_fd take_fd() noexcept { return std::move(fd_); }
    /// The client's address, "host:port".
    const std::string& address() const noexcept { return address_; }
    /// The deadline of the endpoint's arrival.
    const deadline& until() const noexcept { return until_; }
    /// This exchange's nonces (authenticated: set once the hello has arrived).
    const auth_nonce& client_nonce() const noexcept { return client_nonce_; }
    const auth_nonce& server_nonce() const noexcept { return server_nonce_; }

    /// Why the connection is dropped at its deadline, for messages.
    std::string expiry_text(const shared_secret* secret, std::chrono::milliseconds budget) const {
        return "sent " + byte_progress(got_, message_size(secret)) + " of a message in " +
               budget_text(budget);
    }

    /// Reads what has arrived (call when poll(2) says the connection is
    /// readable; never blocks). Returns true once a whole valid endpoint is
    /// there. Throws rcq::error whose step says why the connection is
    /// refused: it closed, failed, or sent something that is not rcq's
    /// protocol (or, with `secret`, did not prove it knows the secret).
    bool on_readable(const shared_secret* secret) {
        ssize_t n = ::recv(fd_.get(), in_.data() + got_, message_size(secret) - got_, MSG_DONTWAIT);
        if (n == 0)
            throw_invalid("closed the connection after " + byte_progress(got_, message_size(secret)), {},
                          ECONNRESET);
        if (n < 0) {
            int err = errno;
            if (err == EINTR || err == EAGAIN || err == EWOULDBLOCK) return false;
            throw_invalid("failed after " + byte_progress(got_, message_size(secret)) + " (" +
                              std::generic_category().message(err) + ")",
                          {}, err);
        }
        got_ += static_cast<std::size_t>(n);
        try {
            return check(secret);
        } catch (const error& e) {
            throw error(e.code(), "was refused: " + e.step(), e.hint());
        }
    }

    /// The endpoint, once on_readable() returned true.
    endpoint peer() const { return decode(std::span(in_).first(endpoint_wire_size)); } // checked, complete

private:
    // How many bytes the message being read has.
    std::size_t message_size(const shared_secret* secret) const {
        if (!secret) return endpoint_wire_size;
        return challenged_ ? endpoint_wire_size + shared_secret::tag_size : tcp_hello_size;
    }

    // Checks what has come so far; throws rcq::error to refuse it. Returns
    // true once a valid (and, with a secret, authenticated) endpoint is there.
    bool check(const shared_secret* secret) {
        auto got = std::span<const std::byte>(in_).first(got_);
        if (!secret) {
            if (got_ >= 4 && std::equal(tcp_auth_magic.begin(), tcp_auth_magic.end(), got.begin()))
                throw_invalid("it asks for authentication and this server has no shared secret",
                              "give both sides the same secret", EPROTO);
            return check_arriving_endpoint(got);
        }
        if (!challenged_) {
            if (!check_arriving_auth_message(got, tcp_hello_size)) return false;
            std::copy_n(reinterpret_cast<const std::uint8_t*>(in_.data()) + 8, client_nonce_.size(),
                        client_nonce_.begin());
            server_nonce_ = fresh_nonce();
            auto tag = secret->tag({"rcq tcp challenge", as_text(client_nonce_), as_text(server_nonce_)});
            std::array<std::uint8_t, 2 * shared_secret::tag_size> payload{};
            std::copy(server_nonce_.begin(), server_nonce_.end(), payload.begin());
            std::copy(tag.begin(), tag.end(), payload.begin() + shared_secret::tag_size);
            auto challenge = tcp_auth_message<tcp_challenge_size>(payload);
            // A few dozen bytes on a fresh connection: the socket buffer takes them at once.
            if (::send(fd_.get(), challenge.data(), challenge.size(), MSG_DONTWAIT | MSG_NOSIGNAL) !=
                static_cast<ssize_t>(challenge.size()))
                throw_invalid("could not be sent the challenge", {}, EPROTO);
            challenged_ = true;
            got_ = 0;
            return false;
        }
        if (!check_arriving_endpoint(got.first(std::min(got_, endpoint_wire_size))) ||
            got_ < message_size(secret))
            return false;
        auto ep = got.first(endpoint_wire_size);
        if (!secret->verify(std::span(reinterpret_cast<const std::uint8_t*>(got.data()) + endpoint_wire_size,
                                      shared_secret::tag_size),
                            {"rcq tcp client endpoint", as_text(client_nonce_), as_text(server_nonce_),
                             as_text(ep)}))
            throw_invalid("failed to authenticate: its tag does not verify (another secret, or a "
                          "replayed exchange)",
                          {}, EACCES);
        return true;
    }

    unique_fd fd_;
    std::string address_;
    deadline until_;
    // Big enough for each message a client sends: hello, endpoint + tag.
    std::array<std::byte, std::max(tcp_hello_size, endpoint_wire_size + shared_secret::tag_size)> in_{};
    std::size_t got_ = 0;
    bool challenged_ = false; // authenticated: hello read, challenge sent
    auth_nonce client_nonce_{};
    auth_nonce server_nonce_{};
};

} // namespace rcq::detail
