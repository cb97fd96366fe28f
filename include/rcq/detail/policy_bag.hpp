// rcq/detail/policy_bag.hpp - sorts a connection's policies into categories.
#pragma once

#include <rcq/config.hpp>

#include <rcq/category.hpp>
#include <rcq/policy.hpp>

#include <boost/hana/append.hpp>
#include <boost/hana/count_if.hpp>
#include <boost/hana/filter.hpp>
#include <boost/hana/front.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>

#include <cstddef>
#include <type_traits>

namespace rcq::detail {

namespace hana = boost::hana;

/// Fails, naming the offending type in the instantiation trace, when `P` is
/// not tagged with one of rcq's categories.
template <class P>
struct check_is_policy : std::true_type {
    static_assert(policy<P>,
                  "rcq::connection<...>: this type is not an rcq policy. A policy declares its "
                  "category, e.g. `using rcq_category = rcq::category::poll;` (or buffer, "
                  "handshake); built-in ones live in rcq::poll, rcq::buffer and rcq::handshake");
};

/// P's category tag, or void for a type that has none (already reported).
template <class P>
struct category_of {
    using type = void;
};
template <class P>
    requires requires { typename P::rcq_category; }
struct category_of<P> {
    using type = typename P::rcq_category;
};

template <class Category>
inline constexpr auto in_category = [](auto t) {
    using P = typename decltype(t)::type;
    return hana::bool_c<std::is_same_v<typename category_of<P>::type, Category>>;
};

/// The policy of `Category` among `Ps`, or `Default` when there is none.
template <class Category, class Default, class... Ps>
struct pick {
    static constexpr auto types = hana::tuple_t<Ps...>;
    static constexpr std::size_t count =
        decltype(hana::count_if(types, in_category<Category>))::value;
    static_assert(count <= 1,
                  "rcq::connection<...>: two policies of the same category were given (e.g. two "
                  "polling policies); give at most one per category and drop the other");
    using type = typename decltype(+hana::front(
        hana::append(hana::filter(types, in_category<Category>), hana::type_c<Default>)))::type;
};

/// The policies of a connection, found among `Ps` in any order, with
/// `Defaults` filling the categories left out.
template <class DefaultPoll, class DefaultBuffer, class DefaultHandshake, class... Ps>
struct policy_bag {
    static_assert((check_is_policy<Ps>::value && ...));

    using poll = typename pick<category::poll, DefaultPoll, Ps...>::type;
    using buffer = typename pick<category::buffer, DefaultBuffer, Ps...>::type;
    using handshake = typename pick<category::handshake, DefaultHandshake, Ps...>::type;

    static_assert(poll_policy<poll>,
                  "rcq::connection<...>: the polling policy does not satisfy rcq::poll_policy: it "
                  "needs a constructor from `ibv_context*`, `rcq::cq make_cq(ibv_context*, int)` "
                  "and `int wait(const rcq::cq&, std::span<ibv_wc>, const rcq::deadline&)`");
    static_assert(buffer_policy<buffer>,
                  "rcq::connection<...>: the buffer policy does not satisfy rcq::buffer_policy: "
                  "it needs a nested `config`, a constructor from `(ibv_pd*, const config&, int remote_access)`, "
                  "and bytes(), lkey() and rkey()");
    static_assert(handshake_policy<handshake>,
                  "rcq::connection<...>: the handshake policy does not satisfy "
                  "rcq::handshake_policy: it needs `rcq::endpoint exchange(const rcq::endpoint&)` "
                  "and `barrier()`, and must be movable");
};

} // namespace rcq::detail
