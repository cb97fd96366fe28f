// rcq/impl/detail/socket.ipp - socket reads and writes bounded by a deadline.
// Included by <rcq/detail/socket.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/detail/socket.hpp>

namespace rcq::detail {

bool wait_for(int fd, short events, const deadline& dl, std::string_view what) {
    for (;;) {
        pollfd pfd{fd, events, 0};
        int rc = ::poll(&pfd, 1, dl.remaining_ms());
        if (rc > 0) {
            if (pfd.revents & POLLNVAL)
                throw_error(std::string(what) + ": poll on a descriptor that is not open", {},
                            EBADF);
            return true;
        }
        if (rc < 0 && errno != EINTR) throw_error(std::string(what) + ": poll", {}, errno);
        // rc == 0 or EINTR: poll rounds the wait up to whole milliseconds, so
        // check the deadline itself rather than trusting a single timeout.
        if (dl.expired()) return false;
    }
}

bool peer_closed(int fd) noexcept {
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) return true;
    std::byte b{};
    const ssize_t n = ::recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

std::string byte_progress(std::size_t done, std::size_t total) {
    return std::to_string(done) + " of " + std::to_string(total) + " bytes";
}

void read_exact(int fd, std::span<std::byte> buf, const deadline& dl, std::string_view what) {
    std::size_t got = 0;
    while (got < buf.size()) {
        ssize_t n = ::recv(fd, buf.data() + got, buf.size() - got, MSG_DONTWAIT);
        if (n > 0) {
            got += static_cast<std::size_t>(n);
            continue;
        }
        if (n == 0)
            throw_error(std::string(what) + ": peer closed the connection after " +
                            byte_progress(got, buf.size()),
                        "the peer exited or gave up; its own output says why", ECONNRESET);
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            if (!wait_for(fd, POLLIN, dl, what))
                throw_error(std::string(what) + ": timed out after " +
                                byte_progress(got, buf.size()),
                            "the peer is connected but did not send in time; check that it reached "
                            "the same step, or give both sides a longer timeout",
                            ETIMEDOUT);
            continue;
        }
        if (err == ECONNRESET)
            throw_error(std::string(what) + ": peer reset the connection after " +
                            byte_progress(got, buf.size()),
                        "the peer exited or gave up; its own output says why", err);
        throw_error(std::string(what) + ": recv failed after " + byte_progress(got, buf.size()), {},
                    err);
    }
}

void write_all(int fd, std::span<const std::byte> buf, const deadline& dl, std::string_view what) {
    std::size_t sent = 0;
    while (sent < buf.size()) {
        ssize_t n = ::send(fd, buf.data() + sent, buf.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0) {
            sent += static_cast<std::size_t>(n);
            continue;
        }
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            if (!wait_for(fd, POLLOUT, dl, what))
                throw_error(std::string(what) + ": timed out after " +
                                byte_progress(sent, buf.size()) + " were sent",
                            "the peer is connected but not reading; check that it reached the same "
                            "step, or give both sides a longer timeout",
                            ETIMEDOUT);
            continue;
        }
        if (err == EPIPE || err == ECONNRESET)
            throw_error(std::string(what) + ": peer closed the connection after " +
                            byte_progress(sent, buf.size()) + " were sent",
                        "the peer exited or gave up; its own output says why", err);
        throw_error(std::string(what) + ": send failed after " + byte_progress(sent, buf.size()) +
                        " were sent",
                    {}, err);
    }
}

} // namespace rcq::detail
