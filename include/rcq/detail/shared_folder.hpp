// rcq/detail/shared_folder.hpp - the file-system side of the handshakes that
// meet in a shared folder (rcq::handshake::file for a pair, file_mesh for N
// ranks): names, the folder check, atomic writes, guarded reads, nonces.
#pragma once

#include <rcq/config.hpp>

#include <rcq/deadline.hpp>
#include <rcq/detail/auth.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/detail/sleep.hpp>
#include <rcq/detail/socket.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rcq::detail {

/// Whether `c` may appear in a name that becomes part of a file name.
inline bool file_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/// Names become parts of file names: no '/', no '.', nothing a shell or
/// another file system would mangle. '.' is refused so that session "a.b"
/// with side "c" and session "a" with side "b.c" cannot share a file.
/// `who` starts the message ("file handshake"), `what` names the setting.
inline void check_file_name_part(std::string_view who, std::string_view what, const std::string& name) {
    bool ok = !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), file_name_char);
    if (!ok)
        throw_invalid(std::string(who) + ": " + std::string(what) + " name " + quote(name) +
                          " is not usable in a file name",
                      "use 1 to 64 letters, digits, '-' or '_' (no '/', '.' or spaces)");
}

/// Checks that `dir` is a folder this user can write to; `role` starts the
/// messages ("file handshake as server").
inline void check_shared_folder(const std::filesystem::path& dir, const std::string& role) {
    struct stat st{};
    if (dir.empty()) throw_invalid(role + ": no folder given", "name a folder both sides can reach");
    if (::stat(dir.c_str(), &st) != 0) {
        int err = errno;
        throw_error(role + ": cannot use folder " + dir.string(),
                    err == ENOENT ? "it does not exist; create it first (rcq does not), on a file "
                                    "system both sides can reach"
                                  : "check the path and the permissions of its parents",
                    err);
    }
    if (!S_ISDIR(st.st_mode))
        throw_error(role + ": " + dir.string() + " is not a folder",
                    "give the shared folder, not a file in it", ENOTDIR);
    if (::access(dir.c_str(), W_OK | X_OK) != 0) {
        int err = errno;
        throw_error(role + ": folder " + dir.string() + " is not writable",
                    "this side writes its files there: fix the folder's permissions or pick one "
                    "this user can write to (on both hosts)",
                    err);
    }
}

/// A fresh 128-bit nonce as 32 lowercase hex digits.
inline std::string hex_nonce() {
    std::array<std::uint8_t, 16> bytes{};
    random_bytes(bytes);
    return hex_bytes(bytes);
}

/// Whether `v` is a nonce as hex_nonce() writes it.
inline bool is_hex_nonce(std::string_view v) {
    return v.size() == 32 && v.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

/// Writes `content` as `final_path` whole: into the temporary file
/// `tmp_path` (same folder, created exclusively, 0600, never through a
/// symbolic link), fsync'ed, closed and renamed into place, so a reader sees
/// either no file or a complete one. Throws rcq::error; the temporary file
/// is removed on failure.
inline void write_file_atomically(const std::filesystem::path& final_path,
                                  const std::filesystem::path& tmp_path, const std::string& content,
                                  const std::string& role) {
    unique_fd fd(::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) {
        int err = errno;
        throw_error(role + ": cannot create " + tmp_path.string(),
                    err == EACCES || err == EPERM || err == EROFS
                        ? "the folder is not writable by this user; fix its permissions or pick "
                          "another folder"
                        : "",
                    err);
    }
    auto fail = [&](const std::string& step) {
        int err = errno;
        fd.reset();
        ::unlink(tmp_path.c_str());
        throw_error(role + ": " + step + " " + tmp_path.string(), {}, err);
    };
    std::size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = EIO;
            fail("writing");
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) fail("fsync of");
    // NFS reports a failed write at close at the latest.
    if (::close(fd.release()) != 0) fail("closing");
    if (::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp_path.c_str());
        throw_error(role + ": cannot rename " + tmp_path.string() + " to " + final_path.string(), {}, err);
    }
}

/// Reads a file a peer wrote at `path`, of at most `max_size` bytes; nullopt
/// while it does not exist. Anything there but wrong throws at once: a
/// symbolic link (ELOOP), a file of another user (EPERM), not a regular
/// file or too large (EPROTO). `peer` names the writer in hints ("the
/// client", "rank 3").
inline std::optional<std::string> read_peer_text(const std::filesystem::path& path, std::size_t max_size,
                                                 const std::string& role, const std::string& peer) {
    // O_NONBLOCK: a FIFO planted under that name must not block open().
    // O_NOFOLLOW: a symbolic link planted there must not make us read
    // (and trust) a file of someone else's choosing.
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW));
    if (!fd) {
        int err = errno;
        // ESTALE: on NFS, the name was just renamed over; look again later.
        if (err == ENOENT || err == ESTALE || err == EINTR) return std::nullopt;
        if (err == ELOOP)
            throw_error(role + ": " + path.string() + " is a symbolic link; refused",
                        peer + " writes a regular file there; delete the link and start again", err);
        throw_error(role + ": cannot open " + path.string(),
                    err == EACCES ? peer + "'s files must be readable by this user" : "", err);
    }
    auto bad = [&](const std::string& what) -> void {
        throw_invalid(role + ": " + path.string() + ": " + what,
                      "it was not written by this version of rcq's file handshake; if it is a "
                      "leftover, delete it and start again",
                      EPROTO);
    };
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) throw_error(role + ": fstat of " + path.string());
    if (!S_ISREG(st.st_mode)) bad("not a regular file");
    // Every side runs as the same user (the files are 0600): a file that
    // another user owns was planted by someone else.
    if (st.st_uid != ::geteuid())
        throw_error(role + ": " + path.string() + " is owned by uid " + std::to_string(st.st_uid) +
                        ", not by this user (uid " + std::to_string(::geteuid()) + "); refused",
                    "run both sides as the same user (every rank, in a mesh); if the file is a leftover of another "
                    "user, delete it or use another folder or session",
                    EPERM);
    if (static_cast<std::uintmax_t>(st.st_size) > max_size)
        bad(std::to_string(st.st_size) + " bytes is too large for a handshake file (at most " +
            std::to_string(max_size) + ")");
    std::string text(max_size + 1, '\0');
    std::size_t got = 0;
    while (got < text.size()) {
        ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            if (errno == ESTALE) return std::nullopt;
            throw_error(role + ": reading " + path.string());
        }
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    if (got > max_size)
        bad("more than " + std::to_string(max_size) + " bytes, too large for a handshake file");
    text.resize(got);
    return text;
}

/// Sleeps `interval`, or until `dl` if that comes first.
inline void pause_until(const deadline& dl, std::chrono::milliseconds interval) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(dl.at() - deadline::clock::now());
    if (left > std::chrono::milliseconds::zero()) detail::sleep_for(std::min(interval, left));
}

/// The "host" line of a handshake file: for people reading the folder.
inline std::string host_name() {
    char host[256] = "?";
    if (::gethostname(host, sizeof host - 1) != 0) host[0] = '?';
    host[sizeof host - 1] = '\0';
    return host;
}

} // namespace rcq::detail
