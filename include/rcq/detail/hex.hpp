// rcq/detail/hex.hpp - numbers as hex text, for messages and narration.
#pragma once

#include <rcq/config.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>

namespace rcq::detail {

/// `v` in lowercase hex, without prefix or padding: 0x2a -> "2a".
RCQ_DECL std::string hex(std::uint64_t v);

/// Bytes as lowercase hex, two digits each: {0x0a, 0xff} -> "0aff".
RCQ_DECL std::string hex_bytes(std::span<const std::uint8_t> bytes);

/// Parses hex_bytes' form into `out`, which `text` must fill exactly;
/// false for any other length or a character that is not a lowercase hex digit.
RCQ_DECL bool parse_hex_bytes(std::string_view text, std::span<std::uint8_t> out);

} // namespace rcq::detail

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/detail/hex.ipp>
#endif
