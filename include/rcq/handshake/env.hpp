// rcq/handshake/env.hpp - swapping endpoints through a launcher: the peer's
// endpoint arrives in an environment variable or as a line on an input
// descriptor, ours leaves as a line on an output descriptor.
#pragma once

#include <rcq/config.hpp>

#include <rcq/category.hpp>
#include <rcq/deadline.hpp>
#include <rcq/detail/auth.hpp>
#include <rcq/detail/budget.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/detail/socket.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/secret.hpp>

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

namespace rcq::detail {

/// An env handshake line cut in two: what comes before " auth=" and what
/// follows it (empty when there is no such part), without surrounding blanks.
struct env_line_parts {
    std::string_view text;
    std::string_view auth;
};

/// Cuts `line` at its last " auth=". Only this function and
/// parse_env_auth read the authentication part of a peer's line.
inline env_line_parts split_env_auth(std::string_view line) {
    constexpr std::string_view blank = " \t\r\n";
    auto first = line.find_first_not_of(blank);
    line = first == std::string_view::npos ? std::string_view{} : line.substr(first);
    line = line.substr(0, line.find_last_not_of(blank) + 1);
    auto at = line.rfind(" auth=");
    if (at == std::string_view::npos) return {line, {}};
    return {line.substr(0, at), line.substr(at + 6)};
}

/// The auth= part of an endpoint line, "<nonce>:<echo>:<tag>": the sender's
/// nonce, the nonce of ours it echoes (or "none"), and its tag.
struct env_auth_token {
    std::string_view nonce; ///< 64 hex digits
    std::string_view echo;  ///< as sent: compared, never parsed
    shared_secret::tag_type tag{};
};

/// Parses an endpoint line's auth= part; throws rcq::error (EPROTO, naming
/// `where`) when it is not three ':'-separated fields with a nonce and a tag
/// of 64 hex digits each.
inline env_auth_token parse_env_auth(std::string_view token, const std::string& where) {
    auto c1 = token.find(':');
    auto c2 = c1 == std::string_view::npos ? c1 : token.find(':', c1 + 1);
    auth_nonce nonce{};
    env_auth_token out;
    if (c2 == std::string_view::npos || !parse_hex_bytes(token.substr(0, c1), nonce) ||
        !parse_hex_bytes(token.substr(c2 + 1), out.tag))
        throw_invalid("env handshake: " + where + ": malformed auth= part " + quote(token),
                      "it must come from the peer's rcq::handshake::env", EPROTO);
    out.nonce = token.substr(0, c1);
    out.echo = token.substr(c1 + 1, c2 - c1 - 1);
    return out;
}

} // namespace rcq::detail

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
/// a trailing `\r` or blank space is ignored on reading. Two lines exist:
/// an endpoint line, which is rcq::to_text's form ("rcq2 qpn=0x... ..."),
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
///   exactly "rcq-go"). examples/launch_env.sh (installed as
///   `rcq-launch-env`) does all of this.
///
/// Stdout belongs to the protocol: with the default out_fd, send narration
/// elsewhere (e.g. connection_options::narrate = &std::clog, which is
/// stderr). A launcher that reads lines in order, rather than picking out the
/// protocol's, would otherwise take a narration line for the endpoint.
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
/// Authentication (authenticate(secret)): each line then ends with
/// " auth=<nonce>:<peer nonce or none>:<tag>" (64 hex digits each), the tag
/// being over the line's endpoint and both nonces. The side started first
/// accepts the second side's line only if it carries its own fresh nonce; the
/// side started second checks at once that the first side's line is
/// authentic, and at barrier() that it is live: each go-ahead line ("rcq-go
/// auth=<tag>") carries a tag over both nonces and its direction (which
/// side, first or second, sent it), so a recorded line replayed to it, or
/// its own go-ahead sent back, is refused there (EACCES), before any RDMA
/// traffic.
/// A side without the secret talking to one with it is refused (EACCES).
///
/// Move-only, not thread-safe.
class env {
public:
    /// Marks this type as a handshake policy.
    using rcq_category = category::handshake;
    /// Its settings.
    using options = env_options;

    /// The longest line read, newline included.
    static constexpr std::size_t max_line = 1024;
    /// The go-ahead line, without its newline.
    static constexpr std::string_view go_line = "rcq-go";

    env() : env(options{}) {}

    /// Default settings with another time budget.
    explicit env(std::chrono::milliseconds timeout) : env(options{.timeout = timeout}) {}

    /// With the given settings.
    explicit env(options opts) : opts_(std::move(opts)) {
        if (opts_.variable.empty() || opts_.variable.find('=') != std::string::npos)
            throw_invalid("env handshake: " + detail::quote(opts_.variable) +
                          " is not a usable variable name");
        if (opts_.out_fd < 0) throw_invalid("env handshake: no output descriptor given");
        if (opts_.timeout <= std::chrono::milliseconds::zero())
            throw_invalid("env handshake: the timeout must be positive");
    }

    /// Takes over; `other` is left closed.
    env(env&& other) noexcept
        : opts_(std::move(other.opts_)), deadline_(other.deadline_), auth_(std::move(other.auth_)),
          nonce_(std::move(other.nonce_)), peer_nonce_(std::move(other.peer_nonce_)),
          local_text_(std::move(other.local_text_)), second_(other.second_),
          moved_from_(std::exchange(other.moved_from_, true)) {}

    /// Takes over; `other` is left closed.
    env& operator=(env&& other) noexcept {
        if (this != &other) {
            opts_ = std::move(other.opts_);
            deadline_ = other.deadline_;
            auth_ = std::move(other.auth_);
            nonce_ = std::move(other.nonce_);
            peer_nonce_ = std::move(other.peer_nonce_);
            local_text_ = std::move(other.local_text_);
            second_ = other.second_;
            moved_from_ = std::exchange(other.moved_from_, true);
        }
        return *this;
    }

    env(const env&) = delete;
    env& operator=(const env&) = delete;
    ~env() = default; // the descriptors are borrowed

    /// Requires the peer to prove it knows `secret`, and proves it in turn;
    /// see the class comment and the README. Call before exchange().
    void authenticate(shared_secret secret) { auth_.set_secret(std::move(secret)); }

    /// Lets exchange() write an endpoint that carries a memory token without
    /// authentication; see the README.
    void allow_memory_without_secret() noexcept { auth_.allow_memory_without_secret(); }

    /// Writes `local`'s endpoint line and returns the peer's, taken from the
    /// variable when it is set, else read from in_fd. See the class comment.
    endpoint exchange(const endpoint& local) {
        check_usable("exchange()");
        auth_.check_offer(local, "env handshake");
        const auto& dl = budget();
        local_text_ = to_text(local);
        if (auth_.secret()) nonce_ = detail::hex_bytes(detail::fresh_nonce());
        std::optional<endpoint> peer;
        if (const char* value = std::getenv(opts_.variable.c_str())) {
            if (*value == '\0')
                throw_invalid("env handshake: " + opts_.variable + " is set but empty",
                              "the launcher must set it to the endpoint line of the side started "
                              "first, or leave it unset on that side");
            peer = accept_line(value, opts_.variable, true);
            second_ = true;
        } else if (opts_.in_fd < 0) {
            throw_invalid("env handshake: " + opts_.variable +
                              " is not set and there is no input to read the peer's endpoint line from",
                          no_peer_hint());
        }
        std::string line = local_text_;
        if (const auto* secret = auth_.secret()) {
            auto peer_nonce = peer ? peer_nonce_ : std::string("none");
            line += " auth=" + nonce_ + ":" + peer_nonce + ":" +
                    detail::hex_bytes(secret->tag({"rcq env endpoint", nonce_, peer_nonce, local_text_}));
        }
        write_line(line, dl, "our endpoint line");
        if (!peer)
            peer = accept_line(read_line(dl, expecting::endpoint_line),
                               "the peer's endpoint line on fd " + std::to_string(opts_.in_fd), false);
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
        const auto* secret = auth_.secret();
        std::string ours(go_line);
        if (secret) ours += " auth=" + detail::hex_bytes(detail::go_ahead_tag(*secret, go_binding(true)));
        write_line(ours, dl, "our go-ahead line");
        auto line = read_line(dl, expecting::go_ahead);
        auto [go, token] = detail::split_env_auth(line);
        if (go == go_line && (secret || !token.empty())) {
            shared_secret::tag_type tag{};
            if (!secret)
                throw_invalid("env handshake: the peer's go-ahead is authenticated and this side has no "
                              "shared secret",
                              "give both sides the same secret", EACCES);
            if (token.empty())
                throw_invalid("env handshake: the peer's go-ahead is not authenticated",
                              "the peer has no shared secret: give both sides the same one", EACCES);
            if (!detail::parse_hex_bytes(token, tag) ||
                !detail::go_ahead_verifies(*secret, tag, go_binding(false)))
                throw_invalid("env handshake: the peer's go-ahead failed to authenticate",
                              "it is not the peer's go-ahead of this exchange: its endpoint line or "
                              "its go-ahead was replayed from another exchange, this side's own "
                              "go-ahead came back, or the peer uses another secret",
                              EACCES);
            return;
        }
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

    /// The settings in use.
    const options& settings() const noexcept { return opts_; }

private:
    std::string budget_text() const { return detail::budget_text(opts_.timeout); }

    const deadline& budget() { return detail::budget(deadline_, opts_.timeout); }

    void check_usable(const char* call) const {
        if (moved_from_) throw_invalid("env handshake: " + std::string(call) + " on a moved-from object");
    }

    std::string no_peer_hint() const {
        return "set " + opts_.variable +
               " to the peer's endpoint line, or run both sides under a launcher that relays their "
               "lines (examples/launch_env.sh)";
    }

    // What a go-ahead of this exchange is bound to: ours (`outgoing`) or the peer's.
    detail::go_ahead_binding go_binding(bool outgoing) const {
        const bool sender_is_second = outgoing == second_;
        return {"env", sender_is_second ? "second" : "first", outgoing ? nonce_ : peer_nonce_,
                outgoing ? peer_nonce_ : nonce_};
    }

    // Parses the peer's endpoint line and, with a secret, checks its tag.
    // `from_first` says the line comes from the side started first (through
    // the variable): its tag cannot name our nonce yet; barrier() checks
    // that side's liveness.
    endpoint accept_line(std::string_view line, const std::string& where, bool from_first) {
        auto [text, token] = detail::split_env_auth(line);
        auto ep = parse(text, where);
        const auto* secret = auth_.secret();
        auto refuse = [&](const std::string& what, const std::string& hint) {
            throw_invalid("env handshake: " + where + ": " + what, hint, EACCES);
        };
        if (!secret) {
            if (!token.empty())
                refuse("it is authenticated and this side has no shared secret",
                       "give both sides the same secret");
            return ep;
        }
        if (token.empty())
            refuse("it is not authenticated", "the peer has no shared secret: give both sides the same one");
        auto auth = detail::parse_env_auth(token, where);
        if (from_first ? auth.echo != "none" : auth.echo != nonce_)
            refuse("it belongs to another exchange (it does not carry this side's nonce)",
                   "it was recorded earlier and replayed; start both sides again");
        if (!secret->verify(auth.tag, {"rcq env endpoint", auth.nonce, auth.echo, text}))
            refuse("it failed to authenticate: its tag does not verify",
                   "the peer uses another secret, or the line was changed on the way");
        peer_nonce_ = std::string(auth.nonce);
        return ep;
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
    detail::handshake_auth auth_;
    std::string nonce_;      // authenticated: ours and the peer's, as hex
    std::string peer_nonce_;
    std::string local_text_; // our endpoint's text form, which its tag covers
    bool second_ = false;    // started second: the peer's endpoint came from the variable
    bool moved_from_ = false;
};

} // namespace rcq::handshake
