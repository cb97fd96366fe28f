// rcq/secret.hpp - a secret both peers know, with which every handshake
// (tcp, file, env) authenticates both sides and binds the endpoints to fresh
// nonces.
#pragma once

#include <rcq/error.hpp>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#if RCQ_WITH_SODIUM
#include <sodium.h>
#endif

namespace rcq {

/// Whether this build can authenticate handshakes (it found libsodium; the
/// CMake package and the Conan recipe define RCQ_WITH_SODIUM when it did).
#if RCQ_WITH_SODIUM
inline constexpr bool authentication_available = true;
#else
inline constexpr bool authentication_available = false;
#endif

/// A secret shared by the two peers, given to a handshake with
/// `authenticate(secret)`. Both sides then prove that they know it, and each
/// side's endpoint is bound to nonces the other side drew for this exchange,
/// so a recorded exchange cannot be replayed. The secret itself never goes on
/// the wire: rcq keeps only a key derived from it (BLAKE2b) and sends
/// HMAC-SHA-512-256 tags (libsodium's crypto_generichash and crypto_auth).
///
/// Only authentication: the endpoints still travel in the clear (they are
/// addresses and numbers, but an rkey is remote access to memory; see the
/// README on when to turn this on).
///
/// Copyable; the key is wiped from memory when an object is destroyed.
/// Without libsodium (authentication_available == false), from_file(),
/// from_env() and from_bytes() throw rcq::error (EOPNOTSUPP).
class shared_secret {
public:
    /// Secrets shorter than this are refused: guessable.
    static constexpr std::size_t min_size = 16;
    /// Longer inputs are refused (a secret file, not a data file).
    static constexpr std::size_t max_size = 4096;

    /// The whole content of `path`, without trailing line ends. The file must
    /// be readable by its owner only (mode 0600 or 0400), like an ssh key.
    static shared_secret from_file(const std::filesystem::path& path) {
        const std::string what = "shared secret: " + path.string();
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) throw_error(what + ": cannot open", "give the path of the secret file", errno);
        struct closer {
            int fd;
            ~closer() { ::close(fd); }
        } close_at_end{fd};
        struct stat st{};
        if (::fstat(fd, &st) != 0) throw_error(what + ": fstat");
        if (!S_ISREG(st.st_mode)) throw_invalid(what + " is not a regular file");
        if ((st.st_mode & 077) != 0)
            throw_invalid(what + " is readable or writable by other users",
                          "chmod 600 " + path.string() + " (only its owner may read a secret)",
                          EACCES);
        std::string text(max_size + 1, '\0');
        std::size_t got = 0;
        while (got < text.size()) {
            ssize_t n = ::read(fd, text.data() + got, text.size() - got);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw_error(what + ": read");
            if (n == 0) break;
            got += static_cast<std::size_t>(n);
        }
        text.resize(got);
        return from_text(text, what);
    }

    /// The value of the environment variable `variable`.
    static shared_secret from_env(const std::string& variable = "RCQ_SECRET") {
        const char* value = std::getenv(variable.c_str());
        if (value == nullptr)
            throw_invalid("shared secret: $" + variable + " is not set",
                          "set it to the same secret (at least " + std::to_string(min_size) +
                              " characters) on both sides");
        return from_text(value, "shared secret: $" + variable);
    }

    /// The bytes themselves (at least min_size of them).
    static shared_secret from_bytes(std::span<const std::byte> bytes) {
        return shared_secret(bytes, "shared secret");
    }

    /// Copies the derived key (the copy is wiped on destruction too).
    shared_secret(const shared_secret&) = default;
    /// Copies the derived key.
    shared_secret& operator=(const shared_secret&) = default;
    ~shared_secret() { wipe(); }

    /// Size of a tag and of the nonces the handshakes draw.
    static constexpr std::size_t tag_size = 32;
    /// A tag or a nonce.
    using tag_type = std::array<std::uint8_t, tag_size>;

    /// The tag over `parts`, each prefixed with its length, so that no two
    /// lists of parts give the same input. For the handshakes.
    tag_type tag(std::initializer_list<std::string_view> parts) const {
        tag_type out{};
#if RCQ_WITH_SODIUM
        auto input = framed(parts);
        crypto_auth(out.data(), reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                    key_.data());
#else
        (void)parts;
#endif
        return out;
    }

    /// Whether `tag` is the tag over `parts`, compared in constant time.
    bool verify(std::span<const std::uint8_t> tag, std::initializer_list<std::string_view> parts) const {
#if RCQ_WITH_SODIUM
        if (tag.size() != tag_size) return false;
        auto input = framed(parts);
        return crypto_auth_verify(tag.data(), reinterpret_cast<const unsigned char*>(input.data()),
                                  input.size(), key_.data()) == 0;
#else
        (void)tag;
        (void)parts;
        return false;
#endif
    }

private:
    static shared_secret from_text(std::string_view text, const std::string& what) {
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
        return shared_secret(std::as_bytes(std::span(text.data(), text.size())), what);
    }

    shared_secret(std::span<const std::byte> bytes, const std::string& what) {
#if RCQ_WITH_SODIUM
        if (bytes.size() < min_size)
            throw_invalid(what + " is " + std::to_string(bytes.size()) + " bytes, too short (at least " +
                              std::to_string(min_size) + ")",
                          "use a long random secret, e.g. head -c 32 /dev/urandom | base64");
        if (bytes.size() > max_size)
            throw_invalid(what + " is longer than " + std::to_string(max_size) + " bytes");
        if (::sodium_init() < 0) throw_invalid(what + ": libsodium failed to initialise", {}, EIO);
        crypto_generichash(key_.data(), key_.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                           bytes.size(), nullptr, 0);
#else
        (void)bytes;
        throw_invalid(what + ": this build of rcq cannot authenticate (it was built without libsodium)",
                      "install libsodium-dev and rebuild, so that RCQ_WITH_SODIUM is defined",
                      EOPNOTSUPP);
#endif
    }

    static std::string framed(std::initializer_list<std::string_view> parts) {
        std::string input;
        for (auto part : parts) {
            auto n = static_cast<std::uint32_t>(part.size());
            for (int shift = 24; shift >= 0; shift -= 8) input += static_cast<char>((n >> shift) & 0xff);
            input += part;
        }
        return input;
    }

    void wipe() noexcept {
#if RCQ_WITH_SODIUM
        sodium_memzero(key_.data(), key_.size());
#endif
    }

    std::array<std::uint8_t, 32> key_{};
};

} // namespace rcq
