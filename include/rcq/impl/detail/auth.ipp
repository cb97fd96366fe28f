// rcq/impl/detail/auth.ipp - the handshakes' shared authentication steps.
// Included by <rcq/detail/auth.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/detail/auth.hpp>

#include <cerrno>
#include <random>

#if RCQ_WITH_SODIUM
#include <sodium.h>
#endif

namespace rcq::detail {

void random_bytes(std::span<std::uint8_t> out) {
#if RCQ_WITH_SODIUM
    if (::sodium_init() < 0) throw_invalid("libsodium failed to initialise", {}, EIO);
    ::randombytes_buf(out.data(), out.size());
#else
    std::random_device rd;
    for (auto& b : out)
        b = static_cast<std::uint8_t>(rd());
#endif
}

auth_nonce fresh_nonce() {
    auth_nonce n{};
    random_bytes(n);
    return n;
}

shared_secret::tag_type go_ahead_tag(const shared_secret& secret, const go_ahead_binding& b) {
    return secret.tag({"rcq go-ahead", b.handshake, b.sender, b.sender_nonce, b.receiver_nonce});
}

bool go_ahead_verifies(const shared_secret& secret, std::span<const std::uint8_t> tag,
                       const go_ahead_binding& b) {
    return secret.verify(tag,
                         {"rcq go-ahead", b.handshake, b.sender, b.sender_nonce, b.receiver_nonce});
}

void handshake_auth::check_offer(const endpoint& local, const std::string& who) const {
    if (local.has_memory() && !secret_ && !memory_without_secret_)
        throw_invalid(who + ": refusing to send an endpoint that carries a memory token (rkey " +
                          std::to_string(local.rkey) + ") over an unauthenticated handshake",
                      "an rkey lets whoever receives it read or write that memory: give both sides "
                      "the same rcq::shared_secret with authenticate(), or, on a network only "
                      "trusted hosts can reach, call allow_memory_without_secret()",
                      EACCES);
}

} // namespace rcq::detail
