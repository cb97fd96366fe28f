// rcq/async.hpp - rcq's asynchronous layer on Boost.Asio (needs Boost 1.80 or
// newer); not part of <rcq/rcq.hpp>, which needs only Boost.Hana.
#pragma once

#include <rcq/config.hpp>

#include <rcq/async/cq.hpp>
#include <rcq/async/error.hpp>
#include <rcq/async/qp.hpp>
