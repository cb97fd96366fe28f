// rcq/detail/hex.hpp - numbers as hex text, for messages and narration.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace rcq::detail {

/// `v` in lowercase hex, without prefix or padding: 0x2a -> "2a".
inline std::string hex(std::uint64_t v) {
    char text[17];
    std::snprintf(text, sizeof text, "%llx", static_cast<unsigned long long>(v));
    return text;
}

} // namespace rcq::detail
