// rcq/detail/auth.hpp - what the three handshakes (tcp, file, env) share
// about authentication: the secret if one was given, the rule for memory
// tokens, fresh nonces and the go-ahead's tag. The tags themselves are
// rcq::shared_secret's.
#pragma once

#include <rcq/config.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/secret.hpp>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace rcq::detail {

/// A nonce of the handshakes' authenticated messages.
using auth_nonce = std::array<std::uint8_t, shared_secret::tag_size>;

/// Fills `out` with random bytes: libsodium's randombytes_buf when built with
/// it, else std::random_device (getrandom(2) on Linux).
RCQ_DECL void random_bytes(std::span<std::uint8_t> out);

RCQ_DECL auth_nonce fresh_nonce();

/// Bytes as the string_view a tag's parts are given in.
inline std::string_view as_text(std::span<const std::uint8_t> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}
inline std::string_view as_text(std::span<const std::byte> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

/// What a go-ahead's tag is bound to: one exchange (its two nonces, both
/// fresh for this exchange) and one direction (the side that sends it).
/// `handshake` names the transport ("tcp", "file", "env"), so that a tag of
/// one can never pass for another's; `sender` is the sending side's role in
/// it ("server" or "client", the file handshake's side name, the env
/// handshake's "first" or "second"). Nonces are given as the handshake
/// carries them (raw bytes or hex), the same way on both sides.
struct go_ahead_binding {
    std::string_view handshake;
    std::string_view sender;
    std::string_view sender_nonce;
    std::string_view receiver_nonce;
};

/// The tag a side sends with its go-ahead: it proves that the holder of the
/// secret reached its barrier in this exchange, in this direction. A
/// go-ahead recorded from another exchange names other nonces, and our own
/// go-ahead reflected back to us names our role and has the nonces the
/// other way round: neither verifies.
RCQ_DECL shared_secret::tag_type go_ahead_tag(const shared_secret& secret,
                                              const go_ahead_binding& b);

/// Whether `tag` is the go-ahead tag of `b` (compared in constant time).
/// The receiver gives the peer's role as the sender and the peer's nonce
/// as the sender's.
RCQ_DECL bool go_ahead_verifies(const shared_secret& secret, std::span<const std::uint8_t> tag,
                                const go_ahead_binding& b);

/// A handshake's authentication settings; each transport holds one and
/// forwards authenticate() and allow_memory_without_secret() to it.
class handshake_auth {
public:
    void set_secret(shared_secret secret) { secret_.emplace(std::move(secret)); }
    void allow_memory_without_secret() noexcept { memory_without_secret_ = true; }

    /// The secret, or nullptr when the handshake is not authenticated.
    const shared_secret* secret() const noexcept { return secret_ ? &*secret_ : nullptr; }

    /// The rule for memory tokens: an endpoint that carries one (an rkey,
    /// remote access to our memory) is sent only over an authenticated
    /// handshake, unless the user said otherwise. Checked before anything
    /// is sent; `who` starts the message ("tcp client").
    RCQ_DECL void check_offer(const endpoint& local, const std::string& who) const;

private:
    std::optional<shared_secret> secret_;
    bool memory_without_secret_ = false;
};

} // namespace rcq::detail

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/detail/auth.ipp>
#endif
