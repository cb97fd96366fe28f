// rcq/detail/socket.hpp - an owned file descriptor, and socket reads and
// writes that give up at a deadline instead of hanging on a silent peer.
#pragma once

#include <rcq/config.hpp>
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
RCQ_DECL bool wait_for(int fd, short events, const deadline& dl, std::string_view what);

/// Whether the peer of the connected socket `fd` has closed it, without
/// blocking: a hang-up or error, or end of stream waiting to be read. Data
/// waiting to be read is left there.
RCQ_DECL bool peer_closed(int fd) noexcept;

RCQ_DECL std::string byte_progress(std::size_t done, std::size_t total);

/// Reads exactly `buf.size()` bytes from the socket `fd` by `dl`. Works on
/// blocking and nonblocking sockets alike (each recv is MSG_DONTWAIT, and
/// poll waits in between). Errors name `what` (say, "tcp client: receiving
/// the server's endpoint from 10.0.0.1:18515") and how far the read got:
/// end of stream -> "peer closed the connection after N of M bytes"
/// (ECONNRESET), deadline -> "timed out after N of M bytes" (ETIMEDOUT).
/// Sockets only: recv(2) refuses pipes and files.
RCQ_DECL void read_exact(int fd, std::span<std::byte> buf, const deadline& dl,
                         std::string_view what);

/// Writes all of `buf` to the socket `fd` by `dl`. Uses MSG_NOSIGNAL, so a
/// vanished peer is an rcq::error ("peer closed the connection after N of M
/// bytes") rather than a SIGPIPE that kills the process. Sockets only.
RCQ_DECL void write_all(int fd, std::span<const std::byte> buf, const deadline& dl,
                        std::string_view what);

} // namespace rcq::detail

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/detail/socket.ipp>
#endif
