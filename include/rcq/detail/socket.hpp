// rcq/detail/socket.hpp - an owned file descriptor, and socket reads and
// writes that give up at a deadline instead of hanging on a silent peer.
#pragma once

#include <rcq/deadline.hpp>
#include <rcq/error.hpp>

#include <cerrno>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

namespace rcq::detail {

/// Owns one file descriptor and closes it on destruction. Move-only; -1 means
/// empty. Not thread-safe, like the descriptor it holds.
class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.fd_, -1));
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }

    /// Gives up ownership without closing.
    int release() noexcept { return std::exchange(fd_, -1); }

    /// Closes the current descriptor (if any) and takes `fd`. close(2) is not
    /// retried on EINTR: on Linux the descriptor is gone either way, and a
    /// retry could close a descriptor another thread has just been given.
    void reset(int fd = -1) noexcept {
        int old = std::exchange(fd_, fd);
        if (old >= 0) ::close(old);
    }

private:
    int fd_ = -1;
};

/// Waits until `fd` reports one of `events` (or an error or hang-up, which
/// the following recv/send will then report). Returns false once `dl` has
/// passed. Restarts after signals, so EINTR never escapes.
inline bool wait_for(int fd, short events, const deadline& dl, std::string_view what) {
    for (;;) {
        pollfd pfd{fd, events, 0};
        int rc = ::poll(&pfd, 1, dl.remaining_ms());
        if (rc > 0) {
            if (pfd.revents & POLLNVAL)
                throw_error(std::string(what) + ": poll on a descriptor that is not open", {}, EBADF);
            return true;
        }
        if (rc < 0 && errno != EINTR) throw_error(std::string(what) + ": poll", {}, errno);
        // rc == 0 or EINTR: poll rounds the wait up to whole milliseconds, so
        // check the deadline itself rather than trusting a single timeout.
        if (dl.expired()) return false;
    }
}

/// Whether the peer of the connected socket `fd` has closed it, without
/// blocking: a hang-up or error, or end of stream waiting to be read. Data
/// waiting to be read is left there.
inline bool peer_closed(int fd) noexcept {
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) return true;
    std::byte b{};
    const ssize_t n = ::recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

inline std::string byte_progress(std::size_t done, std::size_t total) {
    return std::to_string(done) + " of " + std::to_string(total) + " bytes";
}

/// Reads exactly `buf.size()` bytes from the socket `fd` by `dl`. Works on
/// blocking and nonblocking sockets alike (each recv is MSG_DONTWAIT, and
/// poll waits in between). Errors name `what` (say, "tcp client: receiving
/// the server's endpoint from 10.0.0.1:18515") and how far the read got:
/// end of stream -> "peer closed the connection after N of M bytes"
/// (ECONNRESET), deadline -> "timed out after N of M bytes" (ETIMEDOUT).
/// Sockets only: recv(2) refuses pipes and files.
inline void read_exact(int fd, std::span<std::byte> buf, const deadline& dl, std::string_view what) {
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
                throw_error(std::string(what) + ": timed out after " + byte_progress(got, buf.size()),
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

/// Writes all of `buf` to the socket `fd` by `dl`. Uses MSG_NOSIGNAL, so a
/// vanished peer is an rcq::error ("peer closed the connection after N of M
/// bytes") rather than a SIGPIPE that kills the process. Sockets only.
inline void write_all(int fd, std::span<const std::byte> buf, const deadline& dl,
                      std::string_view what) {
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
                throw_error(std::string(what) + ": timed out after " + byte_progress(sent, buf.size()) +
                                " were sent",
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
