// rcq/impl/error.ipp - the definitions of rcq::error and its throw helpers.
// Included by <rcq/error.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/error.hpp>

namespace rcq {

error::error(std::error_code code, const std::string& step, const std::string& hint)
    : std::system_error(code, compose(step, hint)), step_(step), hint_(hint) {}

std::string error::compose(const std::string& step, const std::string& hint) {
    return hint.empty() ? step : step + " [hint: " + hint + "]";
}

[[noreturn]] void throw_error(const std::string& step, const std::string& hint, int err) {
    throw error(std::error_code(err != 0 ? err : EIO, std::generic_category()), step, hint);
}

[[noreturn]] void throw_invalid(const std::string& what, const std::string& hint, int err) {
    throw error(std::error_code(err, std::generic_category()), what, hint);
}

} // namespace rcq
