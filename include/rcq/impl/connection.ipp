// rcq/impl/connection.ipp - the parts of rcq::connection that are not templates.
// Included by <rcq/connection.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/connection.hpp>

#include <cstdint>
#include <string>

namespace rcq::detail {

const connection_options& check_connection_options(const connection_options& opts) {
    check_qp_settings(qp_settings_of(opts), "connection_options");
    const std::uint64_t needed = std::uint64_t(opts.caps.max_send_wr) + opts.caps.max_recv_wr;
    if (opts.cq_depth <= 0 || std::uint64_t(opts.cq_depth) < needed)
        throw_invalid("connection_options::cq_depth " + std::to_string(opts.cq_depth) +
                          " is less than caps.max_send_wr + caps.max_recv_wr (" +
                          std::to_string(needed) + "): the one CQ takes the completions of "
                          "both queues and could overrun, which is fatal to the QP",
                      "set cq_depth >= " + std::to_string(needed) + ", or shorten the queues");
    return opts;
}

} // namespace rcq::detail
