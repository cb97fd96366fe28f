// rcq/handshake/file_mesh.hpp - swapping endpoints among N ranks through one
// file per rank in a shared folder, for launchers without MPI.
#pragma once

#include <rcq/config.hpp>

#include <rcq/deadline.hpp>
#include <rcq/detail/auth.hpp>
#include <rcq/detail/budget.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/detail/reset_on_move.hpp>
#include <rcq/detail/shared_folder.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/secret.hpp>

#include <chrono>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <unistd.h>

namespace rcq::detail {

/// The first line of every file of rcq::handshake::file_mesh: format and version.
inline constexpr std::string_view mesh_format_line = "rcq-file-mesh 1";

/// One parsed file of another rank of rcq::handshake::file_mesh.
struct mesh_record {
    bool ready = false;              ///< state ready (else exchange)
    std::string nonce;               ///< the writer's nonce of its run
    std::vector<std::string> acks;   ///< by rank: a nonce, or "none"
    std::vector<endpoint> endpoints; ///< by rank: the writer's endpoint for that rank
};

/// Parses the text of the file that rank `writer` of a mesh of `size`
/// ranks in `session` must have written; with `secret`, its tag must verify
/// (without, it must have none). `where` starts error messages. Throws
/// rcq::error (EPROTO, EINVAL from the endpoint parser, EACCES for the tag)
/// for anything else. Only this function reads a peer's file content; lines
/// come in the order file_mesh writes them, anything else is refused.
inline mesh_record parse_mesh_record(std::string_view text, std::size_t writer, std::string_view session,
                                     int size, const shared_secret* secret, const std::string& where) {
    constexpr std::string_view format_line = mesh_format_line;
    auto bad = [&](const std::string& what) {
        throw_invalid(where + ": " + what,
                      "it was not written by this version of rcq's file mesh; if it is a "
                      "leftover, delete it and start the mesh again",
                      EPROTO);
    };
    if (text.empty()) bad("empty file");
    if (text.back() != '\n') bad("truncated (the last line has no newline)");
    const std::string_view whole = text;
    std::string_view lines = text.substr(0, text.size() - 1);
    std::size_t consumed = 0; // bytes before the current line, for the tag
    auto next_line = [&]() -> std::optional<std::string_view> {
        if (lines.empty() && consumed >= whole.size()) return std::nullopt;
        auto end = lines.find('\n');
        auto line = lines.substr(0, end);
        consumed += line.size() + 1;
        lines = end == std::string_view::npos ? std::string_view{} : lines.substr(end + 1);
        return line;
    };
    // Reads the next line, which must be "KEY VALUE"; returns VALUE.
    auto expect = [&](std::string_view key) -> std::string_view {
        auto line = next_line();
        if (!line) bad("truncated or incomplete: no \"" + std::string(key) + "\" line");
        auto space = line->find(' ');
        if (line->substr(0, space) != key)
            bad("expected a \"" + std::string(key) + "\" line, got " + quote(*line));
        return space == std::string_view::npos ? std::string_view{} : line->substr(space + 1);
    };
    auto number = [&](std::string_view key, std::string_view v) {
        std::size_t value = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
        if (ec != std::errc{} || end != v.data() + v.size() || v.empty())
            bad("bad " + std::string(key) + " " + quote(v));
        return value;
    };
    // "K REST" for the rank K expected next: returns REST.
    auto indexed = [&](std::string_view key, std::size_t k) {
        auto v = expect(key);
        auto space = v.find(' ');
        if (space == std::string_view::npos || number(key, v.substr(0, space)) != k)
            bad("expected \"" + std::string(key) + " " + std::to_string(k) + " ...\", got " +
                quote(std::string(key) + " " + std::string(v)));
        return v.substr(space + 1);
    };

    auto first = next_line();
    if (first != format_line) {
        constexpr std::string_view name = "rcq-file-mesh ";
        if (first->substr(0, name.size()) == name)
            throw_invalid(where + ": format " + quote(first->substr(name.size())) +
                              " not supported (this build reads version 1)",
                          "build every rank with the same rcq release", EPROTO);
        bad("expected the first line \"" + std::string(format_line) + "\", got " +
            quote(*first));
    }
    if (auto v = expect("session"); v != session)
        bad("belongs to session " + quote(v) + ", not \"" + std::string(session) + "\"");
    if (auto v = expect("rank"); number("rank", v) != writer)
        bad("was written by rank " + quote(v) + ", not " + std::to_string(writer));
    if (auto v = expect("size"); number("size", v) != static_cast<std::size_t>(size))
        throw_invalid(where + ": rank " + std::to_string(writer) + " was started for a mesh of " +
                          quote(v) + " ranks, this rank for " + std::to_string(size),
                      "start every rank with the same size", EPROTO);
    mesh_record r;
    auto state = expect("state");
    if (state != "exchange" && state != "ready") bad("bad state " + quote(state));
    r.ready = state == "ready";
    r.nonce = std::string(expect("nonce"));
    if (!is_hex_nonce(r.nonce))
        bad("bad nonce " + quote(r.nonce) + " (expected 32 hex digits)");
    const auto n = static_cast<std::size_t>(size);
    r.acks.assign(n, std::string());
    for (std::size_t k = 0; k < n; ++k) {
        if (k == writer) continue;
        r.acks[k] = std::string(indexed("ack", k));
        if (r.acks[k] != "none" && !is_hex_nonce(r.acks[k]))
            bad("bad ack " + quote(r.acks[k]) + " (expected 32 hex digits or \"none\")");
    }
    expect("host");
    expect("pid");
    expect("time");
    r.endpoints.assign(n, endpoint{});
    for (std::size_t k = 0; k < n; ++k) {
        if (k == writer) continue;
        auto text_form = indexed("endpoint", k);
        try {
            r.endpoints[k] = from_text(text_form);
        } catch (const error& e) {
            throw error(e.code(), where + ": endpoint " + std::to_string(k) + ": " + e.step(),
                        e.hint().empty() ? "delete the file if it is a leftover, and start the "
                                           "mesh again"
                                         : e.hint());
        }
    }
    const std::string_view signed_part = whole.substr(0, consumed);
    auto tag_line = next_line();
    if (!tag_line) {
        if (secret)
            throw_invalid(where + " is not authenticated (no tag line)",
                          "rank " + std::to_string(writer) +
                              " has no shared secret: give every rank the same one",
                          EACCES);
    } else {
        constexpr std::string_view key = "tag ";
        if (tag_line->substr(0, key.size()) != key) bad("unexpected line " + quote(*tag_line));
        shared_secret::tag_type tag{};
        if (!parse_hex_bytes(tag_line->substr(key.size()), tag))
            bad("bad tag " + quote(tag_line->substr(key.size())) + " (expected " +
                std::to_string(2 * tag.size()) + " hex digits)");
        if (next_line()) bad("lines after the tag");
        if (!secret)
            throw_invalid(where + " is authenticated and this rank has no shared secret",
                          "give every rank the same secret", EACCES);
        if (!secret->verify(tag, {"rcq file mesh", signed_part}))
            throw_invalid(where + " failed to authenticate: its tag does not verify",
                          "rank " + std::to_string(writer) +
                              " uses another secret, or the file was changed",
                          EACCES);
    }
    return r;
}

} // namespace rcq::detail

namespace rcq::handshake {

/// What rcq::handshake::file_mesh needs; see the class comment.
struct file_mesh_options {
    /// The shared folder. It must exist and be writable by this rank; rcq
    /// never creates it.
    std::filesystem::path folder;
    /// Names this run on every rank (a job id, say): 1 to 64 letters,
    /// digits, '-' or '_'.
    std::string session;
    /// This process's rank, 0 to size - 1.
    int rank = 0;
    /// The number of ranks, 1 to file_mesh::max_size.
    int size = 0;
    /// The whole handshake's budget: exchange() and barrier() together,
    /// from the first of those calls.
    std::chrono::milliseconds timeout = std::chrono::seconds{30};
    /// How often the folder is looked at while waiting.
    std::chrono::milliseconds poll_interval = std::chrono::milliseconds{20};
};

/// The file handshake for a mesh: N ranks, each started by a launcher with
/// its rank and the mesh's size, swap endpoints through one file per rank in
/// a shared folder, ending as rcq::handshake::mpi does: rank i holds one RC
/// QP for each other rank j, QP (i, j) connected to QP (j, i).
///
///     rcq::handshake::file_mesh hs({.folder = "/shared/job42", .session = "job42",
///                                   .rank = rank, .size = size});
///     std::vector<rcq::endpoint> mine(size);  // mine[j]: our QP for rank j
///     auto theirs = hs.exchange(mine);        // theirs[j]: rank j's QP for us
///     ... bring each QP to RTS, post its receives ...
///     hs.barrier();                           // every rank's receives are posted
///
/// The file of rank K is `<session>.rank<K>.mesh`, written whole under a
/// hidden temporary name and renamed into place, mode 0600, exactly as
/// rcq::handshake::file writes (the same code); reading refuses symbolic
/// links (ELOOP), files of another user (EPERM), anything that is not a
/// regular file or is too large (EPROTO). So every rank runs as the same
/// user. Its content, one "key value" per line:
///
///     rcq-file-mesh 1               format and version
///     session job42
///     rank 2
///     size 4
///     state exchange                "ready" once this rank is in barrier()
///     nonce 5f0c...                 32 hex digits, fresh for every run
///     ack 0 91e2...                 per other rank: its nonce we last read,
///     ack 1 none                    or "none"
///     ack 3 ...
///     host node7                    host, pid, time: for people reading
///     pid 4242                      the folder, never for decisions
///     time 1718000000
///     endpoint 0 rcq2 qpn=0x...     per other rank: our QP for it
///     endpoint 1 rcq2 ...
///     endpoint 3 rcq2 ...
///     tag 3a9f...                   with a shared secret only: 64 hex digits
///                                   over every byte above it
///
/// Stale files. As in rcq::handshake::file, freshness is proven by nonces,
/// not by times: rank i takes rank j's endpoint only from a file that
/// acknowledges i's nonce of this run, which no file written before this run
/// began can do. Rank i rewrites its own file whenever it reads a nonce of
/// rank j it has not acknowledged yet, so a stale file of j only earns the
/// acknowledgement of a dead nonce; the live j replaces it when it starts.
/// The go-ahead: barrier() rewrites our file with `state ready` (still
/// carrying the endpoints and acknowledgements, for ranks still in
/// exchange()) and waits for every other rank's file in state ready with
/// the nonce we acknowledged and acknowledging ours.
///
/// What stays behind. Each rank's file is read by every other rank, and a
/// rank cannot know when the last one has read it; so the files stay after
/// barrier(). They are harmless (a later run never accepts them and each
/// rank's next run renames its own over it). remove_file() removes this
/// rank's file; call it once every other rank is known to be past its
/// barrier(), e.g. when a message from each of them has arrived.
///
/// Errors. A peer file in another format or version, malformed, of another
/// session, rank or mesh size is an immediate rcq::error (EPROTO, EINVAL
/// from the endpoint parser) naming the file: rcq never leaves a half
/// written file under the final name, so it will not fix itself. Running
/// out of time is ETIMEDOUT naming the ranks missing (no file), the ranks
/// whose file is from another run, and the ranks not yet at the barrier.
/// Calls into the file system (open, fsync, rename) are not bounded: a hung
/// NFS server blocks them as it blocks everything. On NFS, give a timeout of
/// tens of seconds (see rcq::handshake::file on attribute caching).
///
/// Cost: each wait looks at every rank's file, so a file mesh suits tens of
/// ranks, up to max_size; use rcq::handshake::mpi beyond that.
///
/// exchange() then barrier(), each once. Move-only; a moved-from object
/// throws on use. Not thread-safe (one object per rank; ranks may be
/// threads of one process, each with its own object).
class file_mesh {
public:
    /// Its settings.
    using options = file_mesh_options;

    /// The largest mesh.
    static constexpr int max_size = 1024;
    /// The first line of every file: format name and version.
    static constexpr std::string_view format_line = rcq::detail::mesh_format_line;

    /// With the given settings; throws rcq::error (EINVAL) for invalid ones,
    /// or for a folder that is missing or not writable.
    explicit file_mesh(options opts) : opts_(std::move(opts)) {
        rcq::detail::check_file_name_part("file mesh", "session", opts_.session);
        if (opts_.size < 1 || opts_.size > max_size)
            throw_invalid("file mesh: size " + std::to_string(opts_.size) + " is out of range",
                          "give the number of ranks, 1 to " + std::to_string(max_size));
        if (opts_.rank < 0 || opts_.rank >= opts_.size)
            throw_invalid("file mesh: rank " + std::to_string(opts_.rank) + " is not in a mesh of " +
                              std::to_string(opts_.size),
                          "ranks count from 0 to size - 1");
        if (opts_.timeout <= std::chrono::milliseconds::zero())
            throw_invalid(role() + ": the timeout must be positive");
        if (opts_.poll_interval <= std::chrono::milliseconds::zero())
            throw_invalid(role() + ": the poll interval must be positive");
        rcq::detail::check_shared_folder(opts_.folder, role());
        phase_ = phase::fresh;
    }

    /// The same, field by field.
    file_mesh(std::filesystem::path folder, std::string session, int rank, int size,
              std::chrono::milliseconds timeout = std::chrono::seconds{30})
        : file_mesh(options{.folder = std::move(folder),
                            .session = std::move(session),
                            .rank = rank,
                            .size = size,
                            .timeout = timeout}) {}

    /// Takes over; `other` is left moved-from.
    file_mesh(file_mesh&&) noexcept = default;
    /// Takes over; `other` is left moved-from.
    file_mesh& operator=(file_mesh&&) noexcept = default;

    file_mesh(const file_mesh&) = delete;
    file_mesh& operator=(const file_mesh&) = delete;
    ~file_mesh() = default; // the file stays; see the class comment

    /// Requires every rank to prove it knows `secret`: each file then ends
    /// with a tag over its content, and a rank's file is accepted only with a
    /// valid tag (it also acknowledges our fresh nonce, so it cannot be a
    /// replay). All ranks or none. Call before exchange().
    void authenticate(shared_secret secret) { auth_.set_secret(std::move(secret)); }

    /// Lets exchange() publish endpoints that carry a memory token without
    /// authentication (the folder is then the only protection); see the
    /// README.
    void allow_memory_without_secret() noexcept { auth_.allow_memory_without_secret(); }

    /// This process's rank.
    int rank() const noexcept { return opts_.rank; }
    /// The number of ranks.
    int size() const noexcept { return opts_.size; }

    /// Publishes `local[j]` (our endpoint for rank j, for every j but our
    /// rank) and returns, once every other rank's file of this run is there,
    /// element j = rank j's endpoint for us (our own element comes back
    /// value-initialised). Throws rcq::error: EINVAL for a wrong count,
    /// EACCES for a memory token not allowed or a tag that does not verify,
    /// EPROTO/EINVAL for a malformed peer file, ETIMEDOUT naming the ranks
    /// that did not come within the budget.
    std::vector<endpoint> exchange(std::span<const endpoint> local) {
        require(phase::fresh, "exchange()", "call exchange() once, then barrier()");
        const auto n = static_cast<std::size_t>(opts_.size);
        if (local.size() != n)
            throw_invalid(role() + ": exchange() was given " + std::to_string(local.size()) +
                              " endpoints for a mesh of " + std::to_string(n) + " ranks",
                          "pass one endpoint per rank, indexed by rank (our own slot is ignored)");
        for (std::size_t j = 0; j < n; ++j)
            if (!self(j)) auth_.check_offer(local[j], role());
        const deadline& dl = budget();
        nonce_ = rcq::detail::hex_nonce();
        acked_.assign(n, std::string());
        local_.assign(n, std::string());
        for (std::size_t j = 0; j < n; ++j)
            if (!self(j)) local_[j] = to_text(local[j]);
        write_own("exchange");

        std::vector<endpoint> remote(n);
        std::vector<bool> got(n, false);
        got[static_cast<std::size_t>(opts_.rank)] = true;
        std::vector<bool> seen(n, false); // a file was there, perhaps a stale one
        for (;;) {
            bool rewrite = false;
            for (std::size_t j = 0; j < n; ++j) {
                if (got[j]) continue;
                auto peer = read_rank(j);
                if (!peer) continue;
                seen[j] = true;
                if (peer->nonce != acked_[j]) {
                    acked_[j] = peer->nonce;
                    rewrite = true;
                }
                if (peer->acks[rank_index()] == nonce_) {
                    remote[j] = peer->endpoints[rank_index()];
                    got[j] = true;
                }
            }
            // Before returning: the ranks just accepted wait for our ack.
            if (rewrite) write_own("exchange");
            if (std::find(got.begin(), got.end(), false) == got.end()) break;
            if (dl.expired()) {
                std::vector<std::size_t> missing, stale;
                for (std::size_t j = 0; j < n; ++j)
                    if (!got[j]) (seen[j] ? stale : missing).push_back(j);
                std::string what;
                if (!missing.empty()) what = "no file from " + ranks_text(missing);
                if (!stale.empty())
                    what += (what.empty() ? "" : "; ") + std::string("the file of ") + ranks_text(stale) +
                            " never acknowledged this run (a leftover of an earlier run, or that "
                            "rank stopped)";
                throw_error(role() + ": the mesh was not complete within " +
                                rcq::detail::budget_text(opts_.timeout) + ": " + what,
                            "start every rank of 0.." + std::to_string(n - 1) +
                                " with the same folder, session \"" + opts_.session + "\" and size " +
                                std::to_string(n) + ", or give them a longer timeout",
                            ETIMEDOUT);
            }
            rcq::detail::pause_until(dl, opts_.poll_interval);
        }
        phase_ = phase::exchanged;
        return remote;
    }

    /// The go-ahead: marks our file ready and waits until every other rank's
    /// file of this run is ready too. Call it once this rank's QPs are in RTS
    /// with their receives posted. Throws rcq::error (ETIMEDOUT naming the
    /// ranks not ready) when some do not get there within the budget.
    void barrier() {
        require(phase::exchanged, "barrier()", "call exchange() first, then barrier(), once each");
        const deadline& dl = budget();
        write_own("ready");
        const auto n = static_cast<std::size_t>(opts_.size);
        std::vector<bool> ready(n, false);
        ready[rank_index()] = true;
        for (;;) {
            for (std::size_t j = 0; j < n; ++j) {
                if (ready[j]) continue;
                auto peer = read_rank(j);
                ready[j] = peer && peer->ready && peer->nonce == acked_[j] &&
                           peer->acks[rank_index()] == nonce_;
            }
            if (std::find(ready.begin(), ready.end(), false) == ready.end()) break;
            if (dl.expired()) {
                std::vector<std::size_t> late;
                for (std::size_t j = 0; j < n; ++j)
                    if (!ready[j]) late.push_back(j);
                throw_error(role() + ": " + ranks_text(late) + " did not reach the barrier within " +
                                rcq::detail::budget_text(opts_.timeout),
                            "they exchanged endpoints but have not called barrier(); they may have "
                            "failed after the exchange (their own output says why), or need a "
                            "longer timeout",
                            ETIMEDOUT);
            }
            rcq::detail::pause_until(dl, opts_.poll_interval);
        }
        phase_ = phase::done;
    }

    /// Removes this rank's file. Only once every other rank is past its
    /// barrier() (before that, a rank still waiting for our file would time
    /// out); see the class comment.
    void remove_file() const { ::unlink(path_of(opts_.rank).c_str()); }

    /// Where rank `r`'s file lives.
    std::filesystem::path path_of(int r) const {
        return opts_.folder / (opts_.session + ".rank" + std::to_string(r) + ".mesh");
    }

    /// The largest file of a mesh of `size` ranks that is read: the head,
    /// and per rank an ack line and an endpoint line of at most
    /// endpoint_text_max characters.
    static constexpr std::size_t max_file_size(int size) noexcept {
        return 1024 + static_cast<std::size_t>(size) * (64 + endpoint_text_max);
    }

    /// For narration: "file mesh in /shared/job42, session job42, rank 2 of 4".
    std::string describe() const {
        return "file mesh in " + opts_.folder.string() + ", session " + opts_.session + ", rank " +
               std::to_string(opts_.rank) + " of " + std::to_string(opts_.size);
    }

    /// The settings in use.
    const options& settings() const noexcept { return opts_; }

private:
    enum class phase { fresh, exchanged, done, moved_from };

    using record = rcq::detail::mesh_record;

    std::string role() const {
        return "file mesh as rank " + std::to_string(opts_.rank) + " of " + std::to_string(opts_.size);
    }

    std::size_t rank_index() const noexcept { return static_cast<std::size_t>(opts_.rank); }
    bool self(std::size_t j) const noexcept { return j == rank_index(); }

    const deadline& budget() { return rcq::detail::budget(deadline_, opts_.timeout); }

    void require(phase wanted, const char* call, const char* hint) const {
        if (phase_ == wanted) return;
        if (phase_ == phase::moved_from)
            throw_invalid("file mesh: " + std::string(call) + " on a moved-from object");
        throw_invalid(role() + ": " + call + " called out of order", hint);
    }

    // "rank 3", "ranks 1, 2, 5"
    static std::string ranks_text(const std::vector<std::size_t>& ranks) {
        std::string text = ranks.size() == 1 ? "rank " : "ranks ";
        for (std::size_t i = 0; i < ranks.size(); ++i)
            text += (i ? ", " : "") + std::to_string(ranks[i]);
        return text;
    }

    void write_own(std::string_view state) {
        std::string text(format_line);
        text += "\nsession " + opts_.session;
        text += "\nrank " + std::to_string(opts_.rank);
        text += "\nsize " + std::to_string(opts_.size);
        text += "\nstate " + std::string(state);
        text += "\nnonce " + nonce_;
        for (std::size_t j = 0; j < acked_.size(); ++j)
            if (!self(j))
                text += "\nack " + std::to_string(j) + " " + (acked_[j].empty() ? "none" : acked_[j]);
        text += "\nhost " + rcq::detail::host_name();
        text += "\npid " + std::to_string(::getpid());
        text += "\ntime " + std::to_string(static_cast<long long>(std::time(nullptr)));
        for (std::size_t j = 0; j < local_.size(); ++j)
            if (!self(j)) text += "\nendpoint " + std::to_string(j) + " " + local_[j];
        text += "\n";
        if (const auto* secret = auth_.secret())
            text += "tag " + rcq::detail::hex_bytes(secret->tag({"rcq file mesh", text})) + "\n";
        const auto tmp = opts_.folder / ("." + opts_.session + ".rank" + std::to_string(opts_.rank) +
                                         ".mesh." + nonce_.substr(0, 8) + "-" +
                                         std::to_string(++writes_) + ".tmp");
        rcq::detail::write_file_atomically(path_of(opts_.rank), tmp, text, role());
    }

    std::optional<record> read_rank(std::size_t j) const {
        const auto path = path_of(static_cast<int>(j));
        auto text = rcq::detail::read_peer_text(path, max_file_size(opts_.size), role(),
                                           "rank " + std::to_string(j));
        if (!text) return std::nullopt;
        return rcq::detail::parse_mesh_record(*text, j, opts_.session, opts_.size, auth_.secret(),
                                              role() + ": " + path.string());
    }

    options opts_;
    rcq::detail::handshake_auth auth_;
    std::optional<deadline> deadline_; // set on first use
    std::string nonce_;                // this run's, drawn in exchange()
    std::vector<std::string> acked_;   // by rank: the nonce of its file we acknowledge
    std::vector<std::string> local_;   // by rank: our endpoint for it, as text
    unsigned writes_ = 0;              // numbers temporary files
    // moved_from until the constructor has checked everything, and after a move
    rcq::detail::reset_on_move<phase, phase::moved_from> phase_ = phase::moved_from;
};

} // namespace rcq::handshake
