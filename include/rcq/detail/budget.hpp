// rcq/detail/budget.hpp - a handshake's time budget, shared by its steps.
#pragma once

#include <rcq/config.hpp>

#include <rcq/deadline.hpp>

#include <chrono>
#include <optional>

namespace rcq::detail {

/// The deadline of a budget of `total` whose clock starts at the first call:
/// every blocking step of a handshake asks for it, so all of them together
/// take at most `total`.
inline const deadline& budget(std::optional<deadline>& started, std::chrono::milliseconds total) {
    if (!started) started = deadline::after(total);
    return *started;
}

} // namespace rcq::detail
