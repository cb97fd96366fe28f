// rcq/impl/deadline.ipp - time budgets as text.
// Included by <rcq/deadline.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/deadline.hpp>

namespace rcq::detail {

std::string budget_text(std::chrono::milliseconds budget) {
    auto ms = budget.count();
    if (budget >= std::chrono::hours(24 * 365)) return "no time limit";
    return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}

} // namespace rcq::detail
