// rcq/detail/tcp_go_ahead.hpp - the TCP handshake's go-ahead: the message
// each side sends once its QP is ready to receive, and the check of the
// peer's. One function, so that every TCP handshake (one peer or many) sends
// and checks it the same way.
#pragma once

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
inline std::string tcp_go_ahead_message(const tcp_go_ahead_side& side) {
    std::string out(tcp_go_ahead_header_size, '\0');
    std::copy(tcp_go_ahead_magic.begin(), tcp_go_ahead_magic.end(),
              reinterpret_cast<std::byte*>(out.data()));
    if (side.secret == nullptr) return out;
    auto tag = go_ahead_tag(*side.secret, {"tcp", side.server ? "server" : "client",
                                           as_text(side.server ? side.server_nonce : side.client_nonce),
                                           as_text(side.server ? side.client_nonce : side.server_nonce)});
    wire_field<std::uint16_t>::put(static_cast<std::uint16_t>(tag.size()),
                                   reinterpret_cast<std::byte*>(out.data()) + 6);
    return out + std::string(as_text(tag));
}

/// How many bytes the peer of `side` sends as its go-ahead: the header, and
/// the tag when authenticated.
inline std::size_t tcp_go_ahead_size(const tcp_go_ahead_side& side) noexcept {
    return tcp_go_ahead_header_size + (side.secret ? shared_secret::tag_size : 0);
}

/// Checks the header of the peer's go-ahead (the first
/// tcp_go_ahead_header_size bytes) against the one `side` sends itself.
/// Throws rcq::error: EACCES for a go-ahead of the other kind (without a tag
/// to a side with a secret, or with one to a side without), as the file and
/// env handshakes do; EPROTO for bytes that are not a go-ahead.
inline void check_tcp_go_ahead_header(const tcp_go_ahead_side& side, std::span<const std::byte> header) {
    const auto ours = tcp_go_ahead_message(side);
    const auto expected = std::as_bytes(std::span(ours)).first(tcp_go_ahead_header_size);
    if (std::equal(header.begin(), header.begin() + 6, expected.begin()) &&
        wire_field<std::uint16_t>::get(header.data() + 6) == (side.secret ? 0 : shared_secret::tag_size))
        throw_invalid(side.who + ": the go-ahead from " + side.peer +
                          (side.secret ? " is not authenticated" : " is authenticated and this side has no shared secret"),
                      "give both sides the same secret, or neither", EACCES);
    if (!std::equal(header.begin(), header.end(), expected.begin())) {
        auto hex_of = [](std::span<const std::byte> bytes) {
            static constexpr char digits[] = "0123456789abcdef";
            std::string text;
            for (auto b : bytes) {
                auto v = std::to_integer<unsigned>(b);
                text += digits[v >> 4];
                text += digits[v & 0xf];
            }
            return text;
        };
        throw_invalid(side.who + ": expected the go-ahead \"RCQG\" " + hex_of(expected.subspan(4)) +
                          " from " + side.peer + ", got 0x" + hex_of(header),
                      "both sides must call exchange() and then barrier(), in that order, and either "
                      "both authenticate or neither",
                      EPROTO);
    }
}

/// Checks the tag of the peer's go-ahead (authenticated `side` only): it
/// must be the peer's go-ahead of this exchange. Throws rcq::error (EACCES)
/// for one forged, recorded in another exchange, or our own sent back.
inline void check_tcp_go_ahead_tag(const tcp_go_ahead_side& side, std::span<const std::byte> tag) {
    const std::string peer_role = side.server ? "client" : "server";
    const bool peer_is_server = !side.server;
    if (!go_ahead_verifies(*side.secret,
                           std::span(reinterpret_cast<const std::uint8_t*>(tag.data()), tag.size()),
                           {"tcp", peer_role,
                            as_text(peer_is_server ? side.server_nonce : side.client_nonce),
                            as_text(peer_is_server ? side.client_nonce : side.server_nonce)}))
        throw_invalid(side.who + ": the go-ahead from " + side.peer + " failed to authenticate",
                      "it is not the " + peer_role + "'s go-ahead of this exchange: forged, replayed "
                      "from another exchange, or our own sent back; someone on the path is "
                      "tampering with the connection",
                      EACCES);
}

/// Sends our go-ahead and reads and checks the peer's, both by `dl`. Returns
/// when the peer's go-ahead is there and (with a secret) its tag verifies
/// for this exchange and for the peer's direction. Throws rcq::error as
/// check_tcp_go_ahead_header and check_tcp_go_ahead_tag do, and ETIMEDOUT or
/// ECONNRESET from the socket.
inline void swap_tcp_go_ahead(const tcp_go_ahead_side& side, const deadline& dl) {
    const std::string peer_role = side.server ? "client" : "server";
    auto doing = [&](const std::string& action) {
        return side.who + ": " + action + " " + side.peer + " (budget " + side.budget + ")";
    };
    const auto ours = tcp_go_ahead_message(side);
    write_all(side.fd, std::as_bytes(std::span(ours)), dl, doing("sending the go-ahead to"));

    std::array<std::byte, tcp_go_ahead_header_size + shared_secret::tag_size> in{};
    auto header = std::span(in).first(tcp_go_ahead_header_size);
    read_exact(side.fd, header, dl, doing("waiting for the " + peer_role + "'s go-ahead from"));
    check_tcp_go_ahead_header(side, header);
    if (side.secret == nullptr) return;
    auto tag = std::span(in).subspan(tcp_go_ahead_header_size);
    read_exact(side.fd, tag, dl, doing("waiting for the tag of the " + peer_role + "'s go-ahead from"));
    check_tcp_go_ahead_tag(side, tag);
}

} // namespace rcq::detail
