// rcq/impl/detail/tcp_arrival.ipp - the TCP handshake's first stage, server side.
// Included by <rcq/detail/tcp_arrival.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/detail/tcp_arrival.hpp>

namespace rcq::detail {

bool check_arriving_endpoint(std::span<const std::byte> got) {
    if (got.size() >= endpoint_header_size)
        check_endpoint_header(got.first(endpoint_header_size));
    else if (got.size() >= endpoint_magic.size() &&
             !std::equal(endpoint_magic.begin(), endpoint_magic.end(), got.begin()))
        check_endpoint_header(got.first(endpoint_magic.size())); // throws "bad magic"
    return got.size() == endpoint_wire_size;
}

bool check_arriving_auth_message(std::span<const std::byte> got, std::size_t size) {
    auto fail = [](const std::string& what, const std::string& hint) {
        throw_invalid("authenticated handshake: " + what, hint, EPROTO);
    };
    if (got.size() >= 4 && !std::equal(tcp_auth_magic.begin(), tcp_auth_magic.end(), got.begin())) {
        if (std::equal(endpoint_magic.begin(), endpoint_magic.end(), got.begin()))
            fail("the peer sent its endpoint without authenticating",
                 "this side has a shared secret and the peer has none: give both sides the same "
                 "secret");
        check_endpoint_header(got.first(4)); // throws "bad magic", naming what came
    }
    if (got.size() >= 8) {
        auto version = wire_field<std::uint16_t>::get(got.data() + 4);
        auto length = wire_field<std::uint16_t>::get(got.data() + 6);
        if (version != tcp_auth_version)
            fail("version " + std::to_string(version) +
                     " not supported (this build speaks version " +
                     std::to_string(tcp_auth_version) + ")",
                 "build both sides with the same rcq release");
        if (length != size - 8)
            fail("payload length " + std::to_string(length) + ", expected " +
                     std::to_string(size - 8),
                 "both sides must be the same rcq release");
    }
    return got.size() == size;
}

shared_secret::tag_type tcp_server_endpoint_tag(const shared_secret& secret,
                                                const auth_nonce& client_nonce,
                                                const auth_nonce& server_nonce,
                                                std::span<const std::byte> out) {
    return secret.tag(
        {"rcq tcp server endpoint", as_text(client_nonce), as_text(server_nonce), as_text(out)});
}

std::string host_port(const std::string& host, std::uint16_t port) {
    bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string address_of(const sockaddr_storage& addr) {
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

addrinfo_list resolve_tcp(const char* host, std::uint16_t port, int flags, int& gai_error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags | AI_NUMERICSERV;
    addrinfo* list = nullptr;
    auto service = std::to_string(port);
    gai_error = ::getaddrinfo(host, service.c_str(), &hints, &list);
    return addrinfo_list(gai_error == 0 ? list : nullptr);
}

tcp_listening tcp_listen(const std::string& host, std::uint16_t port, int backlog,
                         const std::string& role) {
    int gai = 0;
    auto list = resolve_tcp(host.c_str(), port, AI_PASSIVE, gai);
    if (!list)
        throw_invalid(role + ": cannot use bind address \"" + host + "\" (" + ::gai_strerror(gai) +
                          ")",
                      "give a local address: 0.0.0.0 (all IPv4), :: (IPv4 and IPv6) or the "
                      "address of this host's RoCE interface");
    const addrinfo* ai = list.get();
    unique_fd fd(
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
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
    if (::listen(fd.get(), backlog) != 0)
        throw_error(role + ": listen on " + host_port(host, port));
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0)
        throw_error(role + ": getsockname");
    auto bound_port =
        ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                          : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    return {std::move(fd), bound_port};
}

bool accept_again(int err) {
    return err == EINTR || err == ECONNABORTED || err == EPROTO || err == ENETDOWN ||
           err == ENOPROTOOPT || err == EHOSTDOWN || err == ENONET || err == EHOSTUNREACH ||
           err == EOPNOTSUPP || err == ENETUNREACH;
}

void send_at_once(int fd) noexcept {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string arriving_client::expiry_text(const shared_secret* secret,
                                         std::chrono::milliseconds budget) const {
    return "sent " + byte_progress(got_, message_size(secret)) + " of a message in " +
           budget_text(budget);
}

bool arriving_client::on_readable(const shared_secret* secret) {
    ssize_t n = ::recv(fd_.get(), in_.data() + got_, message_size(secret) - got_, MSG_DONTWAIT);
    if (n == 0)
        throw_invalid("closed the connection after " + byte_progress(got_, message_size(secret)),
                      {}, ECONNRESET);
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

endpoint arriving_client::peer() const {
    return decode(std::span(in_).first(endpoint_wire_size));
}

std::size_t arriving_client::message_size(const shared_secret* secret) const {
    if (!secret) return endpoint_wire_size;
    return challenged_ ? endpoint_wire_size + shared_secret::tag_size : tcp_hello_size;
}

bool arriving_client::check(const shared_secret* secret) {
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
        auto tag =
            secret->tag({"rcq tcp challenge", as_text(client_nonce_), as_text(server_nonce_)});
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
    if (!secret->verify(
            std::span(reinterpret_cast<const std::uint8_t*>(got.data()) + endpoint_wire_size,
                      shared_secret::tag_size),
            {"rcq tcp client endpoint", as_text(client_nonce_), as_text(server_nonce_),
             as_text(ep)}))
        throw_invalid("failed to authenticate: its tag does not verify (another secret, or a "
                      "replayed exchange)",
                      {}, EACCES);
    return true;
}

} // namespace rcq::detail
