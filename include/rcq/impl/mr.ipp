// rcq/impl/mr.ipp - the error of a failed registration.
// Included by <rcq/mr.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/mr.hpp>

#include <cerrno>
#include <string>

namespace rcq::detail {

void throw_reg_mr_failed(std::size_t bytes, int err) {
    throw_error("ibv_reg_mr(" + std::to_string(bytes) + " bytes)",
                err == ENOMEM || err == EPERM || err == EAGAIN
                    ? "the locked-memory limit may be too low: `ulimit -l unlimited`"
                    : "",
                err);
}

} // namespace rcq::detail
