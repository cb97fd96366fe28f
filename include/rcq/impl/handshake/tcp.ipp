// rcq/impl/handshake/tcp.ipp - the TCP handshake's definitions.
// Included by <rcq/handshake/tcp.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/handshake/tcp.hpp>
#include <rcq/detail/sleep.hpp>
#include <rcq/detail/tcp_arrival.hpp>
#include <rcq/detail/tcp_go_ahead.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

namespace rcq::detail {

deadline connect_attempt_deadline(const deadline& dl, std::size_t left) {
    const auto now = deadline::clock::now();
    if (left <= 1 || dl.at() <= now) return dl;
    return deadline(now + (dl.at() - now) / static_cast<int>(std::min<std::size_t>(left, 1024)));
}

} // namespace rcq::detail

namespace rcq::handshake {

tcp tcp::server(std::uint16_t port, std::chrono::milliseconds timeout, std::string bind_address) {
    tcp t(true, std::move(bind_address), port, timeout);
    t.listen();
    return t;
}

tcp tcp::client(std::string host, std::uint16_t port, std::chrono::milliseconds timeout) {
    if (port == 0) // connect(2) to port 0 is refused every time: do not retry it for the budget
        throw_invalid("tcp client: port 0 is not a port a server can listen on",
                      "give the port the server listens on (its port() tells, if it asked for 0)");
    return tcp(false, std::move(host), port, timeout);
}

endpoint tcp::exchange(const endpoint& local) {
    if (closed_) throw_invalid(role() + ": used after close()");
    if (conn_)
        throw_invalid(role() + ": exchange() called twice", "call exchange() once, then barrier()");
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
    detail::read_exact(conn_.get(), header, dl,
                       doing("receiving the " + peer_role() + "'s endpoint from"));
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

void tcp::barrier() {
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

int tcp::peer_family() const noexcept {
    if (server_) return AF_UNSPEC;
    in6_addr v6{};
    in_addr v4{};
    if (::inet_pton(AF_INET, host_.c_str(), &v4) == 1) return AF_INET;
    if (::inet_pton(AF_INET6, host_.c_str(), &v6) == 1) return AF_INET6;
    return AF_UNSPEC;
}

std::string tcp::describe() const {
    return server_ ? "tcp server on port " + std::to_string(port_)
                   : "tcp client to " + host_ + ":" + std::to_string(port_);
}

std::string tcp::role() const {
    return server_ ? "tcp server" : "tcp client";
}

std::string tcp::peer_role() const {
    return server_ ? "client" : "server";
}

std::string tcp::budget_text() const {
    return detail::budget_text(timeout_);
}

std::string tcp::doing(const std::string& action) const {
    return role() + ": " + action + " " + peer_ + " (budget " + budget_text() + ")";
}

void tcp::connected() {
    talk_ = deadline::after(timeout_);
    detail::send_at_once(conn_.get());
}

void tcp::listen() {
    // Room in the backlog for the connections read at once while waiting.
    auto bound = detail::tcp_listen(host_, port_, static_cast<int>(max_waiting), role());
    port_ = bound.port;
    listener_ = std::move(bound.fd);
}

void tcp::client_authenticate(const deadline& dl) {
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
    if (!auth_.secret()->verify(
            payload.subspan(server_nonce_.size()),
            {"rcq tcp challenge", detail::as_text(client_nonce_), detail::as_text(server_nonce_)}))
        throw_invalid(role() + ": the server at " + peer_ + " failed to authenticate",
                      "it does not know our shared secret: give both sides the same one", EACCES);
}

endpoint tcp::wait_for_client() {
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
            if (waiting[i].until().expired())
                refuse(i, waiting[i].expiry_text(secret, hello_timeout));

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
            waiting.emplace_back(std::move(fd), std::move(address),
                                 deadline(std::min(own.at(), dl.at())));
        });
    }
}

[[noreturn]] void tcp::no_valid_client(std::size_t refused, std::size_t still_sending,
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

bool tcp::worth_retrying(int err) {
    return err == ECONNREFUSED || err == ETIMEDOUT || err == EHOSTUNREACH || err == ENETUNREACH ||
           err == ENETDOWN || err == EHOSTDOWN || err == ECONNRESET || err == ECONNABORTED ||
           err == EAGAIN || err == EINTR;
}

int tcp::try_connect(const addrinfo& ai, const deadline& dl) {
    detail::unique_fd fd(
        ::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol));
    if (!fd) return errno;
    if (::connect(fd.get(), ai.ai_addr, ai.ai_addrlen) != 0) {
        // EINTR: the connection attempt goes on in the background.
        if (errno != EINPROGRESS && errno != EINTR) return errno;
        if (!detail::wait_for(fd.get(), POLLOUT, dl,
                              role() + ": connecting to " + detail::host_port(host_, port_)))
            return ETIMEDOUT;
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
        if (err != 0) return err;
    }
    conn_ = std::move(fd);
    return 0;
}

void tcp::connect_with_retry() {
    const auto& dl = wait_budget();
    auto where = detail::host_port(host_, port_);
    peer_ = where;
    std::chrono::milliseconds backoff{50};
    std::string last_error = "none";
    int last_errno = 0;
    for (;;) {
        bool retry = false;
        int gai = 0;
        auto list = detail::resolve_tcp(host_.c_str(), port_, 0, gai);
        if (!list) {
            if (gai != EAI_AGAIN)
                throw_invalid(
                    role() + ": cannot resolve \"" + host_ + "\" (" + ::gai_strerror(gai) + ")",
                    "give the server's IP address or a host name this machine can resolve");
            last_error = ::gai_strerror(gai);
            retry = true;
        }
        std::size_t addresses_left = 0;
        for (const addrinfo* ai = list.get(); ai; ai = ai->ai_next)
            ++addresses_left;
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
        auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(dl.at() - deadline::clock::now());
        if (left <= std::chrono::milliseconds::zero())
            throw_error(role() + ": could not connect to " + where + " within " + budget_text() +
                            " (last error: " + last_error + ")",
                        "is the server running and listening on that port? Start it first, or give "
                        "the client a longer timeout",
                        ETIMEDOUT);
        detail::sleep_for(std::min(backoff, left));
        backoff = std::min(backoff * 2, std::chrono::milliseconds{1000});
    }
}

} // namespace rcq::handshake
