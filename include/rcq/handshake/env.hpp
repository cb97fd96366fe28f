// rcq/handshake/env.hpp - swapping endpoints through a launcher: the peer's
// endpoint arrives in an environment variable or as a line on an input
// descriptor, ours leaves as a line on an output descriptor.
#pragma once

#include <rcq/category.hpp>
#include <rcq/deadline.hpp>
#include <rcq/detail/socket.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

namespace rcq::handshake {

/// What rcq::handshake::env needs; see the class comment.
struct env_options {
    /// The whole handshake's budget: exchange() and barrier() together.
    std::chrono::milliseconds timeout = std::chrono::seconds{30};
    /// The variable that may hold the peer's endpoint line.
    std::string variable = "RCQ_PEER_ENDPOINT";
    /// Where the peer's lines arrive; -1 for none (then only the variable
    /// can give the peer's endpoint, and barrier() cannot be used).
    int in_fd = STDIN_FILENO;
    /// Where this side's lines go.
    int out_fd = STDOUT_FILENO;
};

/// The environment handshake transport, for programs started by a launcher
/// (a shell script, ssh, a batch scheduler) that relays lines between them.
///
/// Protocol. Every message is one line of at most 1024 bytes ending in '\n';
/// a trailing '\r' or blank space is ignored on reading. Two lines exist:
/// an endpoint line, which is rcq::to_text's form ("rcq1 qpn=0x... ..."),
/// and the go-ahead line "rcq-go".
///
///   side started first (A; the variable is not set):
///     exchange(): writes  <A's endpoint line>   to out_fd
///                 reads   <B's endpoint line>   from in_fd
///     barrier():  writes  rcq-go                to out_fd
///                 reads   rcq-go                from in_fd
///
///   side started second (B; RCQ_PEER_ENDPOINT=<A's endpoint line>):
///     exchange(): takes A's endpoint from the variable (checked before
///                 anything is written), then writes <B's endpoint line>
///                 to out_fd; reads nothing
///     barrier():  writes  rcq-go                to out_fd
///                 reads   rcq-go                from in_fd
///
///   the launcher: starts A (with the variable unset) and reads A's first
///   endpoint line; starts B with the variable set to it; then copies every
///   later protocol line of B's output to A's input (B's endpoint line, then
///   B's rcq-go) and of A's output to B's input (A's rcq-go). Any other line a
///   program prints (narration on stdout) is not part of the protocol; a
///   launcher recognises the two kinds by their start ("rcq" and a digit, or
///   exactly "rcq-go"). examples/launch_env.sh does all of this.
///
/// A writes before it reads, so the launcher can read A's line without
/// feeding it anything; both sides write their go-ahead before reading the
/// peer's, so neither waits for the other's read. Each side reads its input
/// one byte at a time and stops at the end of each line, so that whatever
/// follows stays in the descriptor for the rest of the program.
///
/// The descriptors are borrowed, never closed, and their flags (blocking or
/// not) are left alone; waits use poll(2). When out_fd is stdout, C stdio's
/// buffer is flushed first so narration printed before the line comes
/// before it. Writing to a pipe nobody reads is an rcq::error, not a
/// SIGPIPE (the signal is blocked for the calling thread during the write).
///
/// Time budget: as for rcq::handshake::tcp, `timeout` covers exchange() and
/// barrier() together and its clock starts at the first of those calls.
///
/// Errors (rcq::error): the variable unset and no input, or set but empty or
/// malformed (EINVAL, before anything is written); input closed before a
/// whole line (ECONNRESET); a line over 1024 bytes or an unexpected line
/// (EPROTO, or EINVAL from the endpoint parser); our own endpoint coming back
/// (EINVAL: the launcher relayed a side's line to itself); the budget
/// running out (ETIMEDOUT); output closed (EPIPE).
///
/// Move-only, not thread-safe.
class env {
public:
    using rcq_category = category::handshake;
    using options = env_options;

    /// The longest line read, newline included.
    static constexpr std::size_t max_line = 1024;
    /// The go-ahead line, without its newline.
    static constexpr std::string_view go_line = "rcq-go";

    env() : env(options{}) {}

    explicit env(std::chrono::milliseconds timeout) : env(options{.timeout = timeout}) {}

    explicit env(options opts) : opts_(std::move(opts)) {
        if (opts_.variable.empty() || opts_.variable.find('=') != std::string::npos)
            throw_invalid("env handshake: " + detail::quote(opts_.variable) +
                          " is not a usable variable name");
        if (opts_.out_fd < 0) throw_invalid("env handshake: no output descriptor given");
        if (opts_.timeout <= std::chrono::milliseconds::zero())
            throw_invalid("env handshake: the timeout must be positive");
    }

    env(env&& other) noexcept
        : opts_(std::move(other.opts_)), deadline_(other.deadline_),
          moved_from_(std::exchange(other.moved_from_, true)) {}

    env& operator=(env&& other) noexcept {
        if (this != &other) {
            opts_ = std::move(other.opts_);
            deadline_ = other.deadline_;
            moved_from_ = std::exchange(other.moved_from_, true);
        }
        return *this;
    }

    env(const env&) = delete;
    env& operator=(const env&) = delete;
    ~env() = default; // the descriptors are borrowed

    /// Writes `local`'s endpoint line and returns the peer's, taken from the
    /// variable when it is set, else read from in_fd. See the class comment.
    endpoint exchange(const endpoint& local) {
        check_usable("exchange()");
        const auto& dl = budget();
        std::optional<endpoint> peer;
        if (const char* value = std::getenv(opts_.variable.c_str())) {
            if (*value == '\0')
                throw_invalid("env handshake: " + opts_.variable + " is set but empty",
                              "the launcher must set it to the endpoint line of the side started "
                              "first, or leave it unset on that side");
            peer = parse(value, opts_.variable);
        } else if (opts_.in_fd < 0) {
            throw_invalid("env handshake: " + opts_.variable +
                              " is not set and there is no input to read the peer's endpoint line from",
                          no_peer_hint());
        }
        write_line(to_text(local), dl, "our endpoint line");
        if (!peer)
            peer = parse(read_line(dl, expecting::endpoint_line),
                         "the peer's endpoint line on fd " + std::to_string(opts_.in_fd));
        if (*peer == local)
            throw_invalid("env handshake: the peer's endpoint is our own",
                          "the launcher gave this side its own line back; each side must get the "
                          "other side's line");
        return *peer;
    }

    /// The go-ahead: writes "rcq-go" and reads the peer's "rcq-go" from
    /// in_fd, under the handshake's budget. Call it once the QP is in RTS with
    /// its receives posted; when it returns, the peer has done the same.
    void barrier() {
        check_usable("barrier()");
        if (opts_.in_fd < 0)
            throw_invalid("env handshake: barrier() needs an input to read the peer's go-ahead from",
                          "give an in_fd the launcher writes the peer's lines to");
        const auto& dl = budget();
        write_line(std::string(go_line), dl, "our go-ahead line");
        auto line = read_line(dl, expecting::go_ahead);
        if (line != go_line)
            throw_invalid("env handshake: expected the go-ahead line \"rcq-go\" on fd " +
                              std::to_string(opts_.in_fd) + ", got " + detail::quote(line),
                          "the launcher must relay each side's lines to the other side's input, and "
                          "both sides must call exchange() and then barrier()",
                          EPROTO);
    }

    /// For narration.
    std::string describe() const {
        std::string in = opts_.in_fd < 0 ? "" : ", else from fd " + std::to_string(opts_.in_fd);
        return "env handshake: peer endpoint from $" + opts_.variable + in + "; ours to fd " +
               std::to_string(opts_.out_fd);
    }

    const options& settings() const noexcept { return opts_; }

private:
    std::string budget_text() const { return detail::budget_text(opts_.timeout); }

    const deadline& budget() {
        if (!deadline_) deadline_ = deadline::after(opts_.timeout);
        return *deadline_;
    }

    void check_usable(const char* call) const {
        if (moved_from_) throw_invalid("env handshake: " + std::string(call) + " on a moved-from object");
    }

    std::string no_peer_hint() const {
        return "set " + opts_.variable +
               " to the peer's endpoint line, or run both sides under a launcher that relays their "
               "lines (examples/launch_env.sh)";
    }

    static endpoint parse(std::string_view text, const std::string& where) {
        try {
            return from_text(text);
        } catch (const error& e) {
            throw error(e.code(), "env handshake: " + where + ": " + e.step(),
                        e.hint().empty() ? "it must be one line printed by the peer's "
                                           "rcq::handshake::env"
                                         : e.hint());
        }
    }

    enum class expecting { endpoint_line, go_ahead };

    // Reads up to and without the next '\n' (and a '\r' or blanks before it).
    // poll(2) comes before every read(2), so a blocking descriptor cannot
    // outlast the deadline; one byte per read, so nothing after the line is
    // taken from the descriptor.
    std::string read_line(const deadline& dl, expecting kind) {
        const int fd = opts_.in_fd;
        const std::string what =
            kind == expecting::endpoint_line ? "the peer's endpoint line" : "the go-ahead line \"rcq-go\"";
        const std::string where = " on fd " + std::to_string(fd);
        std::string line;
        for (;;) {
            if (line.size() >= max_line)
                throw_invalid("env handshake: " + what + where + " is longer than " +
                                  std::to_string(max_line) + " bytes",
                              "the input must carry only the lines the peer prints for rcq", EPROTO);
            if (!detail::wait_for(fd, POLLIN, dl, "env handshake: waiting for " + what + where))
                throw_error("env handshake: timed out after " + budget_text() + " waiting for " + what +
                                where + " (" + std::to_string(line.size()) + " bytes so far)",
                            kind == expecting::endpoint_line
                                ? opts_.variable + " is not set, so this side waits for the launcher "
                                      "to write the peer's endpoint line to its input; start the peer "
                                      "and relay its line, or set the variable"
                                : "the peer did not reach its barrier, or the launcher does not relay "
                                  "its lines; or give both sides a longer timeout",
                            ETIMEDOUT);
            char c = 0;
            ssize_t n = ::read(fd, &c, 1);
            if (n == 1) {
                if (c == '\n') break;
                line += c;
                continue;
            }
            if (n == 0) {
                if (line.empty() && kind == expecting::endpoint_line)
                    throw_error("env handshake: " + opts_.variable + " is not set and the input (fd " +
                                    std::to_string(fd) + ") ended before the peer's endpoint line",
                                no_peer_hint(), ECONNRESET);
                throw_error("env handshake: the input (fd " + std::to_string(fd) + ") ended after " +
                                std::to_string(line.size()) + " bytes, before " + what + " was complete",
                            "the launcher or the peer stopped; the peer's own output says why",
                            ECONNRESET);
            }
            int err = errno;
            if (err != EINTR && err != EAGAIN && err != EWOULDBLOCK)
                throw_error("env handshake: reading " + what + where, {}, err);
        }
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
            line.pop_back();
        return line;
    }

    // Keeps SIGPIPE from killing the process while one thread writes to a
    // pipe: blocked around the write, and a SIGPIPE that write raised is
    // taken off the pending set before the mask is restored.
    class sigpipe_guard {
    public:
        sigpipe_guard() {
            sigemptyset(&pipe_);
            sigaddset(&pipe_, SIGPIPE);
            sigset_t pending;
            sigemptyset(&pending);
            ::sigpending(&pending);
            already_pending_ = sigismember(&pending, SIGPIPE) == 1;
            ::pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
        }
        sigpipe_guard(const sigpipe_guard&) = delete;
        sigpipe_guard& operator=(const sigpipe_guard&) = delete;
        void raised() {
            if (already_pending_) return;
            timespec zero{};
            while (::sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
            }
        }
        ~sigpipe_guard() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

    private:
        sigset_t pipe_;
        sigset_t old_;
        bool already_pending_ = false;
    };

    void write_line(std::string line, const deadline& dl, const std::string& what) {
        const int fd = opts_.out_fd;
        const std::string where = " to fd " + std::to_string(fd);
        if (fd == STDOUT_FILENO) std::fflush(stdout);
        line += '\n';
        sigpipe_guard guard;
        std::size_t done = 0;
        while (done < line.size()) {
            if (!detail::wait_for(fd, POLLOUT, dl, "env handshake: writing " + what + where))
                throw_error("env handshake: timed out after " + budget_text() + " writing " + what + where,
                            "nobody reads this side's output; the launcher must read it", ETIMEDOUT);
            ssize_t n = ::write(fd, line.data() + done, line.size() - done);
            if (n >= 0) {
                done += static_cast<std::size_t>(n);
                continue;
            }
            int err = errno;
            if (err == EINTR || err == EAGAIN || err == EWOULDBLOCK) continue;
            if (err == EPIPE) {
                guard.raised();
                throw_error("env handshake: cannot write " + what + where + ": nobody reads it any more",
                            "the launcher stopped reading this side's output (it exited or gave up)",
                            err);
            }
            throw_error("env handshake: writing " + what + where, {}, err);
        }
    }

    options opts_;
    std::optional<deadline> deadline_; // set on first use, see the class comment
    bool moved_from_ = false;
};

} // namespace rcq::handshake
