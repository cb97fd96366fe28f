// rcq/detail/dependent_false.hpp - a false that waits for instantiation.
#pragma once

#include <rcq/config.hpp>

namespace rcq::detail {

/// False, but only once `T` is known: a static_assert on it fires when the
/// template around it is instantiated, not when it is parsed.
template <class...>
inline constexpr bool dependent_false = false;

} // namespace rcq::detail
