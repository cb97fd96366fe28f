// rcq/detail/reset_on_move.hpp - a member that a move leaves at a given value.
#pragma once

#include <rcq/config.hpp>

#include <utility>

namespace rcq::detail {

/// A value of type T that moving from leaves as `Moved`, so that a
/// move-only class whose other members move by default can default its
/// moves and still know it was moved from (its phase, say).
template <class T, T Moved>
class reset_on_move {
public:
    /// Holds `value`.
    constexpr reset_on_move(T value) noexcept : value_(value) {}
    /// Takes `other`'s value and leaves `Moved` in it.
    constexpr reset_on_move(reset_on_move&& other) noexcept : value_(std::exchange(other.value_, Moved)) {}
    /// Takes `other`'s value and leaves `Moved` in it.
    constexpr reset_on_move& operator=(reset_on_move&& other) noexcept {
        if (this != &other) value_ = std::exchange(other.value_, Moved);
        return *this;
    }
    /// Sets the value.
    constexpr reset_on_move& operator=(T value) noexcept {
        value_ = value;
        return *this;
    }
    /// The value.
    constexpr operator T() const noexcept { return value_; }

private:
    T value_;
};

} // namespace rcq::detail
