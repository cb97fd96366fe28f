// rcq/secret.hpp - a secret both peers know, with which every handshake
// (tcp, file, env) authenticates both sides and binds the endpoints to fresh
// nonces.
#pragma once

#include <rcq/config.hpp>
#include <rcq/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

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

    /// The whole content of the file at `path`, without trailing line ends.
    /// The file must be readable by its owner only (mode 0600 or 0400), like
    /// an ssh key. A std::filesystem::path converts to the parameter.
    RCQ_DECL static shared_secret from_file(const std::string& path);

    /// The value of the environment variable `variable`.
    RCQ_DECL static shared_secret from_env(const std::string& variable = "RCQ_SECRET");

    /// The bytes themselves (at least min_size of them).
    RCQ_DECL static shared_secret from_bytes(std::span<const std::byte> bytes);

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
    RCQ_DECL tag_type tag(std::initializer_list<std::string_view> parts) const;

    /// Whether `tag` is the tag over `parts`, compared in constant time.
    RCQ_DECL bool verify(std::span<const std::uint8_t> tag,
                         std::initializer_list<std::string_view> parts) const;

private:
    RCQ_DECL static shared_secret from_text(std::string_view text, const std::string& what);

    RCQ_DECL shared_secret(std::span<const std::byte> bytes, const std::string& what);

    RCQ_DECL static std::string framed(std::initializer_list<std::string_view> parts);

    RCQ_DECL void wipe() noexcept;

    std::array<std::uint8_t, 32> key_{};
};

} // namespace rcq

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/secret.ipp>
#endif
