// What the unit tests share.
#pragma once

#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace unit_test {

/// An endpoint whose fields all depend on `qpn`. No memory token (its
/// length is 0, so the handshakes send it without authentication), but the
/// address and rkey fields are not zero, so the codecs carry them.
inline rcq::endpoint endpoint_with(std::uint32_t qpn) {
    rcq::endpoint ep{};
    ep.qpn = qpn;
    ep.psn = qpn * 3;
    ep.gid = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 7};
    ep.remote_addr = 0x7f0000001000;
    ep.rkey = 0x1234;
    ep.mtu = 1024;
    ep.initiator_depth = 16;
    ep.responder_resources = 16;
    return ep;
}

/// The same with a memory token (remote access to 4 KiB).
inline rcq::endpoint endpoint_with_memory(std::uint32_t qpn) {
    auto ep = endpoint_with(qpn);
    ep.remote_len = 4096;
    return ep;
}

/// In the mesh handshakes' tests: rank i's endpoint for rank j, every field
/// depending on both.
inline rcq::endpoint mesh_endpoint(int i, int j) {
    return endpoint_with(static_cast<std::uint32_t>(1000 * (i + 1) + j));
}

/// What rank `rank` of a mesh of `size` offers: mesh_endpoint(rank, j) for
/// every other rank j, its own slot value-initialised.
inline std::vector<rcq::endpoint> mesh_endpoints(int rank, int size) {
    std::vector<rcq::endpoint> eps(static_cast<std::size_t>(size));
    for (int j = 0; j < size; ++j)
        if (j != rank) eps[static_cast<std::size_t>(j)] = mesh_endpoint(rank, j);
    return eps;
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
