// rcq/policy.hpp - the concept each category of policy must satisfy.
#pragma once

#include <rcq/config.hpp>

#include <rcq/category.hpp>
#include <rcq/cq.hpp>
#include <rcq/deadline.hpp>
#include <rcq/device.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/pd.hpp>

#include <infiniband/verbs.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

namespace rcq {

/// A type that names one of the categories in rcq/category.hpp.
template <class P>
concept policy = requires { typename P::rcq_category; } &&
                 (std::same_as<typename P::rcq_category, category::poll> ||
                  std::same_as<typename P::rcq_category, category::buffer> ||
                  std::same_as<typename P::rcq_category, category::handshake>);

/// How completions are waited for. Built from the device context; makes the
/// CQ it waits on (a blocking policy binds it to its completion channel).
/// `wait` returns how many completions it wrote to `out` (> 0), 0 when the
/// deadline passed first, or < 0 when polling failed; it must not throw.
template <class P>
concept poll_policy =
    std::constructible_from<P, ibv_context*> &&
    requires(P& p, ibv_context* ctx, const cq& c, std::span<ibv_wc> out, const deadline& d) {
        { p.make_cq(ctx, 1) } -> std::same_as<cq>;
        { p.wait(c, out, d) } -> std::same_as<int>;
    };

/// Who owns the memory that work requests point into. Built from the PD, the
/// policy's own `config` and the remote access the peer is granted
/// (IBV_ACCESS_REMOTE_* flags, 0 for none); keeps the memory registered while
/// alive.
template <class P>
concept buffer_policy =
    requires { typename P::config; } &&
    std::constructible_from<P, ibv_pd*, const typename P::config&, int> &&
    requires(const P& b) {
        { b.bytes() } -> std::convertible_to<std::span<std::byte>>;
        { b.lkey() } -> std::same_as<std::uint32_t>;
        { b.rkey() } -> std::same_as<std::uint32_t>;
    };

/// How two peers swap endpoints. `exchange` sends ours and returns the
/// peer's; `barrier` returns once both sides have called it (the go-ahead
/// that keeps a SEND from arriving before the peer posted its RECV). Both
/// throw rcq::error on bad input or when their deadline passes.
template <class P>
concept handshake_policy = std::move_constructible<P> && requires(P& h, const endpoint& local) {
    { h.exchange(local) } -> std::same_as<endpoint>;
    h.barrier();
};

} // namespace rcq
