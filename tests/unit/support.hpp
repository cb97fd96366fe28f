// What the unit tests share.
#pragma once

#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace unit_test {

/// An endpoint whose fields all depend on `qpn`, with a memory token.
inline rcq::endpoint endpoint_with(std::uint32_t qpn) {
    return {.qpn = qpn,
            .psn = qpn * 3,
            .lid = 0,
            .gid = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 7},
            .remote_addr = 0x7f0000001000,
            .rkey = 0x1234,
            .remote_len = 4096,
            .mtu = 1024,
            .initiator_depth = 16,
            .responder_resources = 16};
}

/// Runs `f`, expects an rcq::error with errno value `code`, returns its message.
template <class F>
std::string error_of(F&& f, int code) {
    try {
        f();
    } catch (const rcq::error& e) {
        EXPECT_EQ(e.code().value(), code) << e.what();
        return e.what();
    }
    ADD_FAILURE() << "no rcq::error thrown";
    return {};
}

} // namespace unit_test
