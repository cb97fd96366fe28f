// rcq/detail/asio_version.hpp - the Boost version rcq's asynchronous layer needs.
#pragma once

#include <rcq/config.hpp>

#include <boost/version.hpp>

// rcq/async uses Asio's per-operation cancellation slots (Boost 1.77),
// asio::append and asio::deferred (Boost 1.80). The rest of rcq needs only
// Boost.Hana, which Boost 1.74 has.
static_assert(BOOST_VERSION >= 108000,
              "rcq/async needs Boost 1.80 or newer (Asio's cancellation slots, append and "
              "deferred); on Debian 12: apt-get install libboost1.81-dev, which replaces "
              "libboost-dev (1.74)");
