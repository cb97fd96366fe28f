// A handshake policy written outside the library: the one rdma-core's
// ibv_rc_pingpong speaks, so that an rcq program can ping-pong with the stock
// ibv_rc_pingpong. It shows what a user's own policy needs: a category tag,
// exchange() and barrier() (see rcq/policy.hpp).
//
// ibv_rc_pingpong's wire format, over one TCP connection (default port 18515):
//   each side sends 52 bytes of text, "LLLL:QQQQQQ:PPPPPP:GGGG...GGGG" and a
//   NUL: LID, QPN and PSN in hex, then the GID as 32 hex digits (its 16 bytes
//   in order). The client writes first; the server answers once its QP is
//   in RTR; then the client writes "done" and its NUL, and both hang up.
// There is no go-ahead after that: the client SENDs as soon as its QP is in
// RTS. Both programs set rnr_retry 7, so a SEND that arrives before the
// peer's RECV is retried until the RECV is posted.
#pragma once

#include <rcq/category.hpp>
#include <rcq/deadline.hpp>
#include <rcq/detail/socket.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace example {

class rc_pingpong_handshake {
public:
    using rcq_category = rcq::category::handshake;

    /// The message: "0000:000000:000000:" + 32 hex digits + NUL.
    static constexpr std::size_t message_size = 52;

    /// Listens on `port` at once (0: the kernel picks; port() tells).
    static rc_pingpong_handshake server(std::uint16_t port, std::chrono::milliseconds timeout) {
        rc_pingpong_handshake h(true, "", port, timeout);
        h.listen();
        return h;
    }
    static rc_pingpong_handshake client(std::string host, std::uint16_t port,
                                        std::chrono::milliseconds timeout) {
        return rc_pingpong_handshake(false, std::move(host), port, timeout);
    }

    /// ibv_rc_pingpong's text for `e`.
    static std::array<char, message_size> format(const rcq::endpoint& e) {
        std::array<char, message_size> out{};
        int n = std::snprintf(out.data(), out.size(), "%04x:%06x:%06x:", unsigned(e.lid),
                              unsigned(e.qpn & 0xffffff), unsigned(e.psn & 0xffffff));
        for (std::uint8_t byte : e.gid) n += std::snprintf(out.data() + n, out.size() - n, "%02x", byte);
        return out;
    }

    /// Parses ibv_rc_pingpong's text; throws rcq::error saying what is wrong.
    static rcq::endpoint parse(std::string_view text) {
        auto bad = [&](const std::string& what) {
            rcq::throw_invalid("not ibv_rc_pingpong's address message (" + what + ")",
                               "is the peer ibv_rc_pingpong, or a program speaking its format?", EPROTO);
        };
        if (text.size() != message_size || text.back() != '\0') bad("it must be 51 characters and a NUL");
        if (text[4] != ':' || text[11] != ':' || text[18] != ':') bad("fields are LLLL:QQQQQQ:PPPPPP:GID");
        auto hex = [&](std::size_t at, std::size_t digits) {
            std::uint32_t v = 0;
            auto [end, ec] = std::from_chars(text.data() + at, text.data() + at + digits, v, 16);
            if (ec != std::errc{} || end != text.data() + at + digits) bad("a field is not hexadecimal");
            return v;
        };
        rcq::endpoint e{};
        e.lid = static_cast<std::uint16_t>(hex(0, 4));
        e.qpn = hex(5, 6);
        e.psn = hex(12, 6);
        for (std::size_t i = 0; i < 16; ++i) e.gid[i] = static_cast<std::uint8_t>(hex(19 + 2 * i, 2));
        // Not in its message, but fixed by its defaults: path MTU 1024 (-m),
        // and one READ or atomic outstanding each way.
        e.mtu = 1024;
        e.initiator_depth = 1;
        e.responder_resources = 1;
        return e;
    }

    rcq::endpoint exchange(const rcq::endpoint& local) {
        const rcq::deadline dl = rcq::deadline::after(timeout_);
        const auto mine = format(local);
        std::array<char, message_size> theirs{};
        const std::array<char, 5> done{'d', 'o', 'n', 'e', '\0'};
        if (server_) {
            accept_one(dl);
            read(theirs, dl, "the client's address");
            // The stock server answers once its QP is in RTR; ours is in INIT
            // here, and reaches RTR long before the first SEND can arrive.
            write(mine, dl, "our address");
            std::array<char, 5> got{};
            read(got, dl, "the client's \"done\"");
            if (got != done) rcq::throw_invalid("expected \"done\" from the client", "", EPROTO);
        } else {
            connect_with_retry(dl);
            write(mine, dl, "our address");
            read(theirs, dl, "the server's address");
            write(done, dl, "\"done\"");
        }
        conn_.reset(); // ibv_rc_pingpong hangs up here
        return parse(std::string_view(theirs.data(), theirs.size()));
    }

    /// Nothing on the wire: see the comment at the top.
    void barrier() {}

    std::uint16_t port() const noexcept { return port_; }
    std::string describe() const {
        return server_ ? "ibv_rc_pingpong's exchange, server on port " + std::to_string(port_)
                       : "ibv_rc_pingpong's exchange, client to " + host_ + ":" + std::to_string(port_);
    }

private:
    rc_pingpong_handshake(bool server, std::string host, std::uint16_t port, std::chrono::milliseconds timeout)
        : server_(server), host_(std::move(host)), port_(port), timeout_(timeout) {}

    std::string who() const { return server_ ? "rc_pingpong server" : "rc_pingpong client"; }

    template <std::size_t N>
    void read(std::array<char, N>& into, const rcq::deadline& dl, const std::string& what) {
        rcq::detail::read_exact(conn_.get(), std::as_writable_bytes(std::span(into)), dl,
                                who() + ": receiving " + what);
    }
    template <std::size_t N>
    void write(const std::array<char, N>& from, const rcq::deadline& dl, const std::string& what) {
        rcq::detail::write_all(conn_.get(), std::as_bytes(std::span(from)), dl, who() + ": sending " + what);
    }

    void listen() {
        rcq::detail::unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd) rcq::throw_error(who() + ": socket");
        int one = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port_);
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd.get(), 1) != 0)
            rcq::throw_error(who() + ": cannot listen on port " + std::to_string(port_));
        socklen_t len = sizeof addr;
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        listener_ = std::move(fd);
    }

    void accept_one(const rcq::deadline& dl) {
        for (;;) {
            int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
            if (fd >= 0) {
                conn_.reset(fd);
                listener_.reset();
                return;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                rcq::throw_error(who() + ": accept");
            if (!rcq::detail::wait_for(listener_.get(), POLLIN, dl, who() + ": waiting for a client"))
                rcq::throw_error(who() + ": no client on port " + std::to_string(port_) + " in time",
                                 "start ibv_rc_pingpong with this host's name and -p " + std::to_string(port_),
                                 ETIMEDOUT);
        }
    }

    // ibv_rc_pingpong's server may not listen yet: retry until the deadline.
    void connect_with_retry(const rcq::deadline& dl) {
        addrinfo hints{};
        hints.ai_family = AF_INET;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* list = nullptr;
        const std::string service = std::to_string(port_);
        if (int rc = ::getaddrinfo(host_.c_str(), service.c_str(), &hints, &list); rc != 0)
            rcq::throw_invalid(who() + ": cannot resolve " + host_ + " (" + ::gai_strerror(rc) + ")");
        sockaddr_in addr{};
        std::memcpy(&addr, list->ai_addr, sizeof addr);
        ::freeaddrinfo(list);
        for (;;) {
            rcq::detail::unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
            if (!fd) rcq::throw_error(who() + ": socket");
            int err = 0;
            if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
                err = errno;
                if (err == EINPROGRESS) {
                    if (!rcq::detail::wait_for(fd.get(), POLLOUT, dl, who() + ": connecting"))
                        rcq::throw_error(who() + ": no answer from " + host_ + ":" + service + " in time",
                                         "is the host up?", ETIMEDOUT);
                    socklen_t len = sizeof err;
                    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
                }
            }
            if (err == 0) {
                conn_ = std::move(fd);
                return;
            }
            if (err != ECONNREFUSED || dl.expired())
                rcq::throw_error(who() + ": cannot connect to " + host_ + ":" + service,
                                 "is ibv_rc_pingpong's server running with -p " + service + "?", err);
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }

    bool server_;
    std::string host_;
    std::uint16_t port_;
    std::chrono::milliseconds timeout_;
    rcq::detail::unique_fd listener_;
    rcq::detail::unique_fd conn_;
};

} // namespace example
