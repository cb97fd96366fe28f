// rcq/impl/cq.ipp - the error of a failed CQ creation.
// Included by <rcq/cq.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/cq.hpp>

#include <string>

namespace rcq::detail {

void throw_create_cq_failed(int depth) {
    throw_error("ibv_create_cq(depth " + std::to_string(depth) + ")",
                "the device's max_cqe limits the depth; `ibv_devinfo -v` shows it");
}

} // namespace rcq::detail
