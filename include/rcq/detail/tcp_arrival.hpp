// rcq/detail/tcp_arrival.hpp - the server side of the TCP handshake's first
// stage, shared by handshake::tcp (one client) and handshake::tcp_listener
// (many): a listening socket, connections taken from its backlog, and the
// check of what each connection sends until it has proved it speaks rcq's
// protocol (and, with a secret, that it knows the secret).
#pragma once

#include <rcq/config.hpp>
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
RCQ_DECL bool check_arriving_endpoint(std::span<const std::byte> got);

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
RCQ_DECL bool check_arriving_auth_message(std::span<const std::byte> got, std::size_t size);

/// The tag the server sends after its endpoint `out` in an authenticated
/// exchange, over both nonces and the endpoint's bytes.
RCQ_DECL shared_secret::tag_type tcp_server_endpoint_tag(const shared_secret& secret,
                                                         const auth_nonce& client_nonce,
                                                         const auth_nonce& server_nonce,
                                                         std::span<const std::byte> out);

/// "host:port", with brackets around an IPv6 address.
RCQ_DECL std::string host_port(const std::string& host, std::uint16_t port);

/// A peer's socket address as host_port text.
RCQ_DECL std::string address_of(const sockaddr_storage& addr);

struct addrinfo_deleter {
    void operator()(addrinfo* list) const noexcept { ::freeaddrinfo(list); }
};
/// The list getaddrinfo(3) gives, freed with it.
using addrinfo_list = std::unique_ptr<addrinfo, addrinfo_deleter>;

/// getaddrinfo for a TCP stream to `host`:`port`; empty on failure, with the
/// EAI_* code in `gai_error`.
RCQ_DECL addrinfo_list resolve_tcp(const char* host, std::uint16_t port, int flags, int& gai_error);

/// A nonblocking listening socket and the port it is bound to.
struct tcp_listening {
    unique_fd fd;
    std::uint16_t port = 0;
};

/// Binds to `host`:`port` (0: any free port) and listens with room for
/// `backlog` connections. Errors start with `role` and say what to do.
RCQ_DECL tcp_listening tcp_listen(const std::string& host, std::uint16_t port, int backlog,
                                  const std::string& role);

/// Errors of a connection that died in the backlog, and signals: accept(2)
/// asks to simply try again.
RCQ_DECL bool accept_again(int err);

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
RCQ_DECL void send_at_once(int fd) noexcept;

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
    RCQ_DECL std::string expiry_text(const shared_secret* secret,
                                     std::chrono::milliseconds budget) const;

    /// Reads what has arrived (call when poll(2) says the connection is
    /// readable; never blocks). Returns true once a whole valid endpoint is
    /// there. Throws rcq::error whose step says why the connection is
    /// refused: it closed, failed, or sent something that is not rcq's
    /// protocol (or, with `secret`, did not prove it knows the secret).
    RCQ_DECL bool on_readable(const shared_secret* secret);

    /// The endpoint, once on_readable() returned true.
    RCQ_DECL endpoint peer() const; // checked, complete

private:
    // How many bytes the message being read has.
    RCQ_DECL std::size_t message_size(const shared_secret* secret) const;

    // Checks what has come so far; throws rcq::error to refuse it. Returns
    // true once a valid (and, with a secret, authenticated) endpoint is there.
    RCQ_DECL bool check(const shared_secret* secret);

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

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/detail/tcp_arrival.ipp>
#endif
