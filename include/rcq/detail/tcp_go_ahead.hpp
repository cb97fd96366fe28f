// rcq/detail/tcp_go_ahead.hpp - the TCP handshake's go-ahead: the message
// each side sends once its QP is ready to receive, and the check of the
// peer's. One function, so that every TCP handshake (one peer or many) sends
// and checks it the same way.
#pragma once

#include <rcq/config.hpp>
#include <rcq/deadline.hpp>
#include <rcq/detail/auth.hpp>
#include <rcq/detail/socket.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/secret.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace rcq::detail {

/// The go-ahead's header: magic "RCQG", a reserved u16 (zero) and the
/// length (u16, big-endian) of what follows. Without a secret nothing
/// follows (the 8 bytes "RCQG" 00000000); with one, the 32-byte go-ahead tag
/// (detail::go_ahead_tag over both nonces and the sender's role).
inline constexpr std::array<std::byte, 4> tcp_go_ahead_magic{std::byte{'R'}, std::byte{'C'},
                                                             std::byte{'Q'}, std::byte{'G'}};
/// Size of the go-ahead's header.
inline constexpr std::size_t tcp_go_ahead_header_size = 8;

/// One side of a TCP go-ahead: where it goes, who sends it, and what binds it
/// to this exchange. `who` and `peer` start and fill error messages ("tcp
/// server", "10.0.0.2:40312"), `budget` says how long the deadline was.
struct tcp_go_ahead_side {
    int fd = -1;
    bool server = false;
    const shared_secret* secret = nullptr; ///< nullptr: not authenticated
    std::span<const std::uint8_t> client_nonce{};
    std::span<const std::uint8_t> server_nonce{};
    std::string who;
    std::string peer;
    std::string budget;
};

/// The go-ahead `side` sends: the header, then its tag when authenticated.
RCQ_DECL std::string tcp_go_ahead_message(const tcp_go_ahead_side& side);

/// How many bytes the peer of `side` sends as its go-ahead: the header, and
/// the tag when authenticated.
RCQ_DECL std::size_t tcp_go_ahead_size(const tcp_go_ahead_side& side) noexcept;

/// Checks the header of the peer's go-ahead (the first
/// tcp_go_ahead_header_size bytes) against the one `side` sends itself.
/// Throws rcq::error: EACCES for a go-ahead of the other kind (without a tag
/// to a side with a secret, or with one to a side without), as the file and
/// env handshakes do; EPROTO for bytes that are not a go-ahead.
RCQ_DECL void check_tcp_go_ahead_header(const tcp_go_ahead_side& side,
                                        std::span<const std::byte> header);

/// Checks the tag of the peer's go-ahead (authenticated `side` only): it
/// must be the peer's go-ahead of this exchange. Throws rcq::error (EACCES)
/// for one forged, recorded in another exchange, or our own sent back.
RCQ_DECL void check_tcp_go_ahead_tag(const tcp_go_ahead_side& side, std::span<const std::byte> tag);

/// Sends our go-ahead and reads and checks the peer's, both by `dl`. Returns
/// when the peer's go-ahead is there and (with a secret) its tag verifies
/// for this exchange and for the peer's direction. Throws rcq::error as
/// check_tcp_go_ahead_header and check_tcp_go_ahead_tag do, and ETIMEDOUT or
/// ECONNRESET from the socket.
RCQ_DECL void swap_tcp_go_ahead(const tcp_go_ahead_side& side, const deadline& dl);

} // namespace rcq::detail

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/detail/tcp_go_ahead.ipp>
#endif
