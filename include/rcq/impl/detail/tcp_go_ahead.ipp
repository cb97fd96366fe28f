// rcq/impl/detail/tcp_go_ahead.ipp - the TCP handshakes' go-ahead.
// Included by <rcq/detail/tcp_go_ahead.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/detail/tcp_go_ahead.hpp>

namespace rcq::detail {

std::string tcp_go_ahead_message(const tcp_go_ahead_side& side) {
    std::string out(tcp_go_ahead_header_size, '\0');
    std::copy(tcp_go_ahead_magic.begin(), tcp_go_ahead_magic.end(),
              reinterpret_cast<std::byte*>(out.data()));
    if (side.secret == nullptr) return out;
    auto tag =
        go_ahead_tag(*side.secret, {"tcp", side.server ? "server" : "client",
                                    as_text(side.server ? side.server_nonce : side.client_nonce),
                                    as_text(side.server ? side.client_nonce : side.server_nonce)});
    wire_field<std::uint16_t>::put(static_cast<std::uint16_t>(tag.size()),
                                   reinterpret_cast<std::byte*>(out.data()) + 6);
    return out + std::string(as_text(tag));
}

std::size_t tcp_go_ahead_size(const tcp_go_ahead_side& side) noexcept {
    return tcp_go_ahead_header_size + (side.secret ? shared_secret::tag_size : 0);
}

void check_tcp_go_ahead_header(const tcp_go_ahead_side& side, std::span<const std::byte> header) {
    const auto ours = tcp_go_ahead_message(side);
    const auto expected = std::as_bytes(std::span(ours)).first(tcp_go_ahead_header_size);
    if (std::equal(header.begin(), header.begin() + 6, expected.begin()) &&
        wire_field<std::uint16_t>::get(header.data() + 6) ==
            (side.secret ? 0 : shared_secret::tag_size))
        throw_invalid(side.who + ": the go-ahead from " + side.peer +
                          (side.secret ? " is not authenticated"
                                       : " is authenticated and this side has no shared secret"),
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
        throw_invalid(
            side.who + ": expected the go-ahead \"RCQG\" " + hex_of(expected.subspan(4)) +
                " from " + side.peer + ", got 0x" + hex_of(header),
            "both sides must call exchange() and then barrier(), in that order, and either "
            "both authenticate or neither",
            EPROTO);
    }
}

void check_tcp_go_ahead_tag(const tcp_go_ahead_side& side, std::span<const std::byte> tag) {
    const std::string peer_role = side.server ? "client" : "server";
    const bool peer_is_server = !side.server;
    if (!go_ahead_verifies(
            *side.secret, std::span(reinterpret_cast<const std::uint8_t*>(tag.data()), tag.size()),
            {"tcp", peer_role, as_text(peer_is_server ? side.server_nonce : side.client_nonce),
             as_text(peer_is_server ? side.client_nonce : side.server_nonce)}))
        throw_invalid(side.who + ": the go-ahead from " + side.peer + " failed to authenticate",
                      "it is not the " + peer_role +
                          "'s go-ahead of this exchange: forged, replayed "
                          "from another exchange, or our own sent back; someone on the path is "
                          "tampering with the connection",
                      EACCES);
}

void swap_tcp_go_ahead(const tcp_go_ahead_side& side, const deadline& dl) {
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
    read_exact(side.fd, tag, dl,
               doing("waiting for the tag of the " + peer_role + "'s go-ahead from"));
    check_tcp_go_ahead_tag(side, tag);
}

} // namespace rcq::detail
