// rcq/handshake/file.hpp - swapping endpoints through files in a folder both
// peers can see (a local directory, NFS, a cluster's shared scratch space).
#pragma once

#include <rcq/config.hpp>

#include <rcq/category.hpp>
#include <rcq/deadline.hpp>
#include <rcq/detail/auth.hpp>
#include <rcq/detail/budget.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/detail/shared_folder.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/secret.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rcq::detail {

/// The first line of every handshake file: format name and version.
inline constexpr std::string_view file_format_line = "rcq-file-handshake 1";

/// One parsed peer file of rcq::handshake::file.
struct file_record {
    std::string nonce;
    std::string ack;
    endpoint ep{};
    std::string endpoint_text; // as written, for the tag
    std::string tag;           // 64 hex digits, or empty when the file has none
};

/// Parses the text of a peer's handshake file of `kind` ("endpoint" or
/// "ready") that `peer` of `session` must have written; `where` starts error
/// messages ("file handshake as client: /dir/job42.server.endpoint"). Throws
/// rcq::error (EPROTO, or EINVAL from the endpoint parser) for anything
/// else. Only this function reads a peer's file content.
inline file_record parse_file_record(std::string_view text, std::string_view kind,
                                     std::string_view session, std::string_view peer,
                                     const std::string& where) {
    auto bad = [&](const std::string& what) {
        throw_invalid(where + ": " + what,
                      "it was not written by this version of rcq's file handshake; if it is a "
                      "leftover, delete it and start both sides again",
                      EPROTO);
    };
    if (text.empty()) bad("empty file");
    if (text.back() != '\n') bad("truncated (the last line has no newline)");
    std::string_view lines = text.substr(0, text.size() - 1);
    auto next_line = [&lines] {
        auto end = lines.find('\n');
        auto line = lines.substr(0, end);
        lines = end == std::string_view::npos ? std::string_view{} : lines.substr(end + 1);
        return line;
    };

    auto first = next_line();
    if (first != file_format_line) {
        constexpr std::string_view name = "rcq-file-handshake ";
        if (first.substr(0, name.size()) == name)
            throw_invalid(where + ": format " + quote(first.substr(name.size())) +
                              " not supported (this build reads version 1)",
                          "build both sides with the same rcq release", EPROTO);
        bad("expected the first line \"" + std::string(file_format_line) + "\", got " + quote(first));
    }

    static constexpr std::string_view keys[] = {"file", "session", "side",     "nonce", "ack",
                                                "host", "pid",     "time", "endpoint", "tag"};
    std::string_view values[std::size(keys)]{};
    bool seen[std::size(keys)]{};
    while (!lines.empty()) {
        auto line = next_line();
        auto space = line.find(' ');
        auto key = line.substr(0, space);
        auto value = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
        auto it = std::find(std::begin(keys), std::end(keys), key);
        if (it == std::end(keys)) bad("unknown line " + quote(line));
        auto i = static_cast<std::size_t>(it - std::begin(keys));
        if (seen[i]) bad("duplicate line " + quote(key));
        seen[i] = true;
        values[i] = value;
    }
    auto need = [&](std::size_t i) {
        if (!seen[i]) bad("truncated or incomplete: no \"" + std::string(keys[i]) + "\" line");
        return values[i];
    };

    if (need(0) != kind)
        bad("holds a " + quote(values[0]) + " record, expected \"" + std::string(kind) + "\"");
    if (need(1) != session)
        bad("belongs to session " + quote(values[1]) + ", not \"" + std::string(session) + "\"");
    if (need(2) != peer)
        bad("was written by side " + quote(values[2]) + ", not \"" + std::string(peer) + "\"");
    file_record r;
    r.nonce = std::string(need(3));
    if (!is_hex_nonce(r.nonce)) bad("bad nonce " + quote(r.nonce) + " (expected 32 hex digits)");
    r.ack = std::string(need(4));
    if (r.ack != "none" && !is_hex_nonce(r.ack))
        bad("bad ack " + quote(r.ack) + " (expected 32 hex digits or \"none\")");
    if (kind == "endpoint") {
        auto text_form = need(8);
        r.endpoint_text = std::string(text_form);
        try {
            r.ep = from_text(text_form);
        } catch (const error& e) {
            throw error(e.code(), where + ": " + e.step(),
                        e.hint().empty() ? "delete the file if it is a leftover, and start both "
                                           "sides again"
                                         : e.hint());
        }
    } else if (seen[8]) {
        bad("a ready file carries no endpoint");
    }
    if (seen[9]) {
        r.tag = std::string(values[9]);
        shared_secret::tag_type bytes{};
        if (!parse_hex_bytes(r.tag, bytes))
            bad("bad tag " + quote(r.tag) + " (expected " + std::to_string(2 * bytes.size()) +
                " hex digits)");
    }
    return r;
}

} // namespace rcq::detail

namespace rcq::handshake {

/// What rcq::handshake::file needs; see the class comment.
struct file_options {
    /// The shared folder. It must exist and this side must be able to write
    /// to it; rcq never creates it.
    std::filesystem::path folder;
    /// Names this run on both sides (a job id, say). 1 to 64 characters among
    /// letters, digits, '-' and '_'.
    std::string session;
    /// This side's name and the peer's ("server" and "client"); same rules
    /// as the session, and they must differ.
    std::string self;
    /// The peer's name.
    std::string peer;
    /// The whole handshake's budget: exchange() and barrier() together.
    std::chrono::milliseconds timeout = std::chrono::seconds{30};
    /// How often the folder is looked at while waiting.
    std::chrono::milliseconds poll_interval = std::chrono::milliseconds{20};
};

/// The file handshake transport: each side publishes its endpoint as a file
/// in a shared folder and waits for the peer's.
///
/// Files, all in `folder`, named after the session and the writer's side:
///
///     <session>.<side>.endpoint    written by <side> in exchange()
///     <session>.<side>.ready       written by <side> in barrier()
///
/// Each is written whole under a hidden temporary name in the same folder
/// (".<session>.<side>.<kind>.<nonce prefix>-<n>.tmp"), fsync'ed and
/// renamed into place, so a reader sees either no file or a complete one.
/// Files are created with mode 0600: only this user (and root) can read the
/// endpoint, its memory token and the nonces. So both sides must run as the
/// same user: a peer file that another user owns is refused (EPERM), and so
/// is a symbolic link in its place (ELOOP), as planted, not written by the
/// peer. (On NFS with root_squash, run both sides as an ordinary user.)
/// Their content is a few lines of text, one "key value" per line:
///
///     rcq-file-handshake 1          format and version
///     file endpoint                 or "file ready"
///     session job42
///     side server
///     nonce 5f0c...                 32 hex digits, fresh for every run
///     ack 91e2...                   the peer's nonce we last read, or "none"
///     host node7                    host, pid, time: for people reading
///     pid 4242                      the folder, never for decisions
///     time 1718000000               (Unix seconds)
///     endpoint rcq1 qpn=0x... ...   the text form (endpoint files only)
///     tag 3a9f...                   with a shared secret only: 64 hex digits
///
/// Protection from stale files. A file left by an earlier run of the same
/// session (a crash, a side killed mid-handshake) must never be taken for
/// the peer's. Each run draws a random 128-bit nonce, and a peer's file is
/// accepted only if it acknowledges that nonce, which no file written
/// before this run started can do:
///  1. exchange() writes our endpoint file with `ack none`, then polls for
///     the peer's. Whenever the peer's file carries a nonce we have not yet
///     acknowledged, we rewrite ours with `ack <that nonce>`. Once the
///     peer's file says `ack <our nonce>`, its endpoint is from this run and
///     exchange() returns it. A stale peer file only ever makes us
///     acknowledge a dead nonce; the live peer replaces it when it starts,
///     and we acknowledge again.
///  2. barrier() writes our ready file (our nonce, ack the peer's) and waits
///     for the peer's ready file carrying the same pair mirrored. A ready
///     file from any other run names other nonces and is ignored.
/// Creation times are not used to judge freshness: the peer may rightly
/// have started long before us, and clocks on the hosts sharing an NFS
/// folder need not agree.
///
/// Who removes what. At the start of exchange() each side removes its own
/// leftover ready file (its endpoint file is replaced by the rename). When
/// barrier() has accepted the peer's ready file, it removes that file (we
/// were its only reader) and our own endpoint file (the peer has finished
/// exchange(), or it could not have written a ready file). So after both
/// barriers return, nothing is left. After a failure, files may be left
/// behind; they are harmless, as the next run will not accept them.
///
/// A peer file that is not in this format (not a regular file, larger than
/// 4 KiB, another format version, a malformed line or endpoint, another
/// session or side inside) is an immediate rcq::error (EPROTO, or EINVAL
/// from the endpoint parser), not something to wait out: rcq never leaves a
/// half-written file under the final name, so such a file was written by
/// something else and will not fix itself. The hint says to delete it.
///
/// Time budget: as for rcq::handshake::tcp, `timeout` covers exchange() and
/// barrier() together and its clock starts at the first of those calls, not
/// at construction. Waiting for the peer ends with ETIMEDOUT naming the
/// file waited for. Calls into the file system itself (open, fsync, rename)
/// are not bounded: a hung NFS server blocks them as it blocks everything.
///
/// On NFS, a file created on one host can take a few seconds to appear on
/// another (the client caches that a name does not exist; see the mount
/// options lookupcache and acdirmin): give the handshake a timeout of tens
/// of seconds there, as the default does.
///
/// The constructor checks the names and that the folder exists and is
/// writable. exchange() must come before barrier(), each once. Two live
/// processes using the same session and side at once are not supported.
/// Move-only; a moved-from object throws on use. Not thread-safe.
class file {
public:
    /// Marks this type as a handshake policy.
    using rcq_category = category::handshake;
    /// Its settings.
    using options = file_options;

    /// The largest handshake file read; anything larger is refused unread.
    static constexpr std::size_t max_file_size = 4096;
    /// The first line of every file: format name and version.
    static constexpr std::string_view format_line = detail::file_format_line;

    /// With the given settings; throws rcq::error for invalid ones.
    explicit file(options opts) : opts_(std::move(opts)) {
        check_name("session", opts_.session);
        check_name("self", opts_.self);
        check_name("peer", opts_.peer);
        if (opts_.self == opts_.peer)
            throw_invalid(role() + ": self and peer are both \"" + opts_.self + "\"",
                          "give the two sides different names, e.g. \"server\" and \"client\"");
        if (opts_.timeout <= std::chrono::milliseconds::zero())
            throw_invalid(role() + ": the timeout must be positive");
        if (opts_.poll_interval <= std::chrono::milliseconds::zero())
            throw_invalid(role() + ": the poll interval must be positive");
        check_folder();
    }

    /// The same, field by field.
    file(std::filesystem::path folder, std::string session, std::string self, std::string peer,
         std::chrono::milliseconds timeout = std::chrono::seconds{30})
        : file(options{.folder = std::move(folder),
                       .session = std::move(session),
                       .self = std::move(self),
                       .peer = std::move(peer),
                       .timeout = timeout}) {}

    /// Requires the peer to prove it knows `secret`, and proves it in turn:
    /// every file then carries a "tag" line over its content, and a peer
    /// file is accepted only with a valid tag over our nonce (so a file from
    /// an earlier exchange cannot be replayed). A ready file's tag is its
    /// go-ahead tag, over both nonces and the side that wrote it. Both sides must do so, or
    /// neither. Call before exchange(). See the README on authentication.
    void authenticate(shared_secret secret) { auth_.set_secret(std::move(secret)); }

    /// Lets exchange() publish an endpoint that carries a memory token
    /// without authentication; see the README.
    void allow_memory_without_secret() noexcept { auth_.allow_memory_without_secret(); }

    /// Takes over; `other` is left closed.
    file(file&& other) noexcept
        : opts_(std::move(other.opts_)), auth_(std::move(other.auth_)), deadline_(other.deadline_),
          nonce_(std::move(other.nonce_)),
          acked_(std::move(other.acked_)), local_text_(std::move(other.local_text_)),
          writes_(other.writes_), phase_(std::exchange(other.phase_, phase::moved_from)) {}

    /// Takes over; `other` is left closed.
    file& operator=(file&& other) noexcept {
        if (this != &other) {
            opts_ = std::move(other.opts_);
            auth_ = std::move(other.auth_);
            deadline_ = other.deadline_;
            nonce_ = std::move(other.nonce_);
            acked_ = std::move(other.acked_);
            local_text_ = std::move(other.local_text_);
            writes_ = other.writes_;
            phase_ = std::exchange(other.phase_, phase::moved_from);
        }
        return *this;
    }

    file(const file&) = delete;
    file& operator=(const file&) = delete;
    ~file() = default; // files are left to the protocol; see the class comment

    /// Publishes `local` as SESSION.SELF.endpoint and returns the
    /// endpoint in SESSION.PEER.endpoint once that file acknowledges
    /// this run. Throws rcq::error: ETIMEDOUT when the peer's file does not
    /// come (or stays stale) within the budget, EPROTO/EINVAL for a
    /// malformed peer file, errno values for a folder that cannot be written.
    endpoint exchange(const endpoint& local) {
        require(phase::fresh, "exchange()", "call exchange() once per handshake object");
        auth_.check_offer(local, role());
        const auto& dl = budget();
        nonce_ = detail::hex_nonce();
        acked_.clear();
        local_text_ = to_text(local);
        ::unlink(path_of(opts_.self, "ready").c_str()); // a leftover of an earlier run
        write_endpoint_file();

        const auto peer_path = path_of(opts_.peer, "endpoint");
        bool seen = false;
        for (;;) {
            if (auto peer = read_peer_file(peer_path, "endpoint")) {
                seen = true;
                if (peer->nonce != acked_) {
                    acked_ = peer->nonce;
                    write_endpoint_file(); // before returning: the peer waits for this ack
                }
                if (peer->ack == nonce_) {
                    check_tag(*peer, "endpoint", peer_path);
                    phase_ = phase::exchanged;
                    return peer->ep;
                }
            }
            if (dl.expired()) {
                if (seen)
                    throw_error(role() + ": " + peer_path.string() +
                                    " never acknowledged this run within " + budget_text() +
                                    " (it carries another run's nonce)",
                                "it is a leftover of an earlier run and the " + opts_.peer +
                                    " of this run has not started, or the " + opts_.peer +
                                    " stopped before reading our file; start it with the same folder "
                                    "and session \"" + opts_.session + "\"",
                                ETIMEDOUT);
                throw_error(role() + ": no endpoint from the " + opts_.peer + " at " +
                                peer_path.string() + " within " + budget_text(),
                            "start the " + opts_.peer + " with the same folder and session \"" +
                                opts_.session + "\", or give both sides a longer timeout",
                            ETIMEDOUT);
            }
            pause(dl);
        }
    }

    /// The go-ahead: publishes SESSION.SELF.ready and waits for the
    /// peer's ready file from this run, then removes the files this side is
    /// responsible for. Call it once the QP is in RTS with its receives
    /// posted. Throws rcq::error (ETIMEDOUT naming the file) when the peer
    /// does not get there within the budget.
    void barrier() {
        require(phase::exchanged, "barrier()", "call exchange() first, then barrier(), once each");
        const auto& dl = budget();
        write_file("ready", record_text("ready", acked_, {}));

        const auto peer_path = path_of(opts_.peer, "ready");
        bool seen = false;
        for (;;) {
            if (auto peer = read_peer_file(peer_path, "ready")) {
                if (peer->nonce == acked_ && peer->ack == nonce_) {
                    check_tag(*peer, "ready", peer_path);
                    ::unlink(peer_path.c_str());
                    ::unlink(path_of(opts_.self, "endpoint").c_str());
                    phase_ = phase::done;
                    return;
                }
                seen = true;
            }
            if (dl.expired()) {
                std::string why = seen ? " (" + peer_path.string() + " exists but is from another run)"
                                       : ": no " + peer_path.string();
                throw_error(role() + ": the " + opts_.peer + " did not reach the barrier within " +
                                budget_text() + why,
                            "the " + opts_.peer + " exchanged endpoints but has not called barrier(); "
                            "it may have failed after the exchange (its own output says why), or it "
                            "needs a longer timeout",
                            ETIMEDOUT);
            }
            pause(dl);
        }
    }

    /// For narration: "file handshake in /shared/dir, session job42, as server (peer client)".
    std::string describe() const {
        return "file handshake in " + opts_.folder.string() + ", session " + opts_.session + ", as " +
               opts_.self + " (peer " + opts_.peer + ")";
    }

    /// The settings in use.
    const options& settings() const noexcept { return opts_; }

    /// Where `side`'s file of `kind` ("endpoint" or "ready") lives.
    std::filesystem::path path_of(std::string_view side, std::string_view kind) const {
        return opts_.folder / (opts_.session + "." + std::string(side) + "." + std::string(kind));
    }

private:
    enum class phase { fresh, exchanged, done, moved_from };

    using record = detail::file_record;

    std::string role() const { return "file handshake as " + opts_.self; }

    std::string budget_text() const { return detail::budget_text(opts_.timeout); }

    const deadline& budget() { return detail::budget(deadline_, opts_.timeout); }

    void require(phase wanted, const char* call, const char* hint) const {
        if (phase_ == wanted) return;
        if (phase_ == phase::moved_from)
            throw_invalid("file handshake: " + std::string(call) + " on a moved-from object");
        throw_invalid(role() + ": " + call + " called out of order", hint);
    }

    static void check_name(const char* what, const std::string& name) {
        detail::check_file_name_part("file handshake", what, name);
    }

    void check_folder() const { detail::check_shared_folder(opts_.folder, role()); }

    // With a secret: the parts an endpoint file's tag covers, written by `side`.
    // A ready file is a go-ahead, and its tag is the go-ahead tag of
    // (side, nonce, ack): bound to this run's two nonces and to its writer.
    static detail::go_ahead_binding ready_binding(std::string_view side, std::string_view nonce,
                                                  std::string_view ack) {
        return {"file", side, nonce, ack};
    }

    // The peer's file was accepted by its nonces; now its tag must agree.
    void check_tag(const record& peer, std::string_view kind, const std::filesystem::path& path) const {
        const auto* secret = auth_.secret();
        const std::string where = role() + ": " + path.string();
        if (!secret) {
            if (!peer.tag.empty())
                throw_invalid(where + " is authenticated and this side has no shared secret",
                              "give both sides the same secret", EACCES);
            return;
        }
        if (peer.tag.empty())
            throw_invalid(where + " is not authenticated (no tag line)",
                          "the " + opts_.peer + " has no shared secret: give both sides the same one",
                          EACCES);
        shared_secret::tag_type tag{};
        detail::parse_hex_bytes(peer.tag, tag); // checked by the parser
        const bool verifies =
            kind == "ready" ? detail::go_ahead_verifies(*secret, tag, ready_binding(opts_.peer, peer.nonce, peer.ack))
                            : secret->verify(tag, {"rcq file handshake", kind, opts_.session, opts_.peer,
                                                   peer.nonce, peer.ack, peer.endpoint_text});
        if (!verifies)
            throw_invalid(where + " failed to authenticate: its tag does not verify",
                          "the " + opts_.peer + " uses another secret, or the file was changed",
                          EACCES);
    }

    // A whole file: the head, the endpoint line if any, and with a secret the tag.
    std::string record_text(std::string_view kind, const std::string& ack,
                            std::string_view endpoint_text) const {
        std::string text = record_head(kind, ack);
        if (!endpoint_text.empty()) text += "endpoint " + std::string(endpoint_text) + "\n";
        if (const auto* secret = auth_.secret()) {
            auto ack_text = ack.empty() ? std::string("none") : ack;
            auto tag = kind == "ready"
                           ? detail::go_ahead_tag(*secret, ready_binding(opts_.self, nonce_, ack_text))
                           : secret->tag({"rcq file handshake", kind, opts_.session, opts_.self, nonce_,
                                          ack_text, endpoint_text});
            text += "tag " + detail::hex_bytes(tag) + "\n";
        }
        return text;
    }

    std::string record_head(std::string_view kind, const std::string& ack) const {
        std::string text(format_line);
        text += "\nfile " + std::string(kind);
        text += "\nsession " + opts_.session;
        text += "\nside " + opts_.self;
        text += "\nnonce " + nonce_;
        text += "\nack " + (ack.empty() ? std::string("none") : ack);
        text += "\nhost " + detail::host_name();
        text += "\npid " + std::to_string(::getpid());
        text += "\ntime " + std::to_string(static_cast<long long>(std::time(nullptr)));
        return text + "\n";
    }

    void write_endpoint_file() {
        write_file("endpoint", record_text("endpoint", acked_, local_text_));
    }

    // Temporary file in the same folder, fsync, rename: readers see all or nothing.
    void write_file(std::string_view kind, const std::string& content) {
        const auto tmp_path = opts_.folder / ("." + opts_.session + "." + opts_.self + "." +
                                              std::string(kind) + "." + nonce_.substr(0, 8) + "-" +
                                              std::to_string(++writes_) + ".tmp");
        detail::write_file_atomically(path_of(opts_.self, kind), tmp_path, content, role());
    }

    // Reads and parses the peer's file of `kind`; nullopt while it does not
    // exist. Anything that is there but wrong throws at once (see the class
    // comment for why it is not waited out).
    std::optional<record> read_peer_file(const std::filesystem::path& path, std::string_view kind) const {
        auto text = detail::read_peer_text(path, max_file_size, role(), "the " + opts_.peer);
        if (!text) return std::nullopt;
        return detail::parse_file_record(*text, kind, opts_.session, opts_.peer,
                                         role() + ": " + path.string());
    }

    void pause(const deadline& dl) const { detail::pause_until(dl, opts_.poll_interval); }

    options opts_;
    detail::handshake_auth auth_;
    std::optional<deadline> deadline_; // set on first use, see the class comment
    std::string nonce_;                // this run's, drawn in exchange()
    std::string acked_;                // the peer's nonce we acknowledge; after exchange(), the peer's
    std::string local_text_;           // our endpoint's text form, for rewrites
    unsigned writes_ = 0;              // numbers temporary files
    phase phase_ = phase::fresh;
};

} // namespace rcq::handshake
