// rcq/category.hpp - the tags that sort policies into categories.
#pragma once

#include <rcq/config.hpp>

namespace rcq {

/// A policy says which category it belongs to with a member type:
///
///     struct my_poll { using rcq_category = rcq::category::poll; ... };
///
/// rcq::connection sorts the policies it is given by that tag, so they can
/// come in any order.
namespace category {
struct poll {};
struct buffer {};
struct handshake {};
} // namespace category

} // namespace rcq
