// rcq/state.hpp - the phantom states of a QP and the rules they encode.
#pragma once

#include <rcq/config.hpp>

#include <rcq/detail/dependent_false.hpp>

#include <concepts>
#include <type_traits>

namespace rcq {

/// The states of an RC queue pair that rcq tracks in the type of its handle.
/// They carry no data: `qp<state::rts>` is just an `ibv_qp*`.
namespace state {
/// A QP just created, or reset.
struct reset {
    /// The state's name.
    static constexpr const char* name = "RESET";
};
/// Initialized: receives may be posted.
struct init {
    /// The state's name.
    static constexpr const char* name = "INIT";
};
/// Ready to receive.
struct rtr {
    /// The state's name.
    static constexpr const char* name = "RTR";
};
/// Ready to send.
struct rts {
    /// The state's name.
    static constexpr const char* name = "RTS";
};
/// In error: requests are flushed.
struct error {
    /// The state's name.
    static constexpr const char* name = "ERROR";
};
} // namespace state

template <class S>
concept qp_state = std::same_as<S, state::reset> || std::same_as<S, state::init> ||
                   std::same_as<S, state::rtr> || std::same_as<S, state::rts> ||
                   std::same_as<S, state::error>;

// The rules below guard qp's members: requires-clauses of the posts, and
// static_asserts of the constructors and transitions (so that the first error
// line names them). Their names are what the compiler prints when a rule is
// broken, so each reads as the fix.

/// Sends are only valid once the QP is Ready To Send.
template <class S>
concept qp_must_be_in_rts_to_post_send = std::same_as<S, state::rts>;

/// Receives may be posted from INIT on (the IB spec allows it), so that they
/// are in place before the peer's first SEND arrives.
template <class S>
concept qp_must_be_in_init_rtr_or_rts_to_post_recv =
    std::same_as<S, state::init> || std::same_as<S, state::rtr> || std::same_as<S, state::rts>;

/// A QP is created in RESET; the other states are reached by transitions.
template <class S>
concept qp_must_be_created_in_reset = std::same_as<S, state::reset>;

template <class S>
concept qp_must_be_in_reset_to_move_to_init = std::same_as<S, state::reset>;

template <class S>
concept qp_must_be_in_init_to_move_to_rtr = std::same_as<S, state::init>;

template <class S>
concept qp_must_be_in_rtr_to_move_to_rts = std::same_as<S, state::rtr>;

} // namespace rcq
