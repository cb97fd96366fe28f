// rcq/detail/budget.hpp - a handshake's time budget, shared by its steps.
#pragma once

#include <rcq/deadline.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace rcq::detail {

/// The deadline of a budget of `total` whose clock starts at the first call:
/// every blocking step of a handshake asks for it, so all of them together
/// take at most `total`.
inline const deadline& budget(std::optional<deadline>& started, std::chrono::milliseconds total) {
    if (!started) started = deadline::after(total);
    return *started;
}

/// A budget as text for messages: "30 s", or "500 ms" when not whole seconds.
inline std::string budget_text(std::chrono::milliseconds total) {
    const auto ms = total.count();
    return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}

} // namespace rcq::detail
