// rcq/agreement.hpp - the RoCE settings the two sides of a connection agree
// on from their endpoints: path MTU, depth of RDMA READs and atomics, and
// the address family of their GIDs.
#pragma once

#include <rcq/config.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/gid.hpp>

#include <infiniband/verbs.h>

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>

namespace rcq {

/// The ibv_mtu for a path MTU given in bytes, or nothing when `bytes` is not
/// one of 256, 512, 1024, 2048 and 4096.
inline std::optional<ibv_mtu> mtu_from_bytes(unsigned bytes) noexcept {
    switch (bytes) {
    case 256: return IBV_MTU_256;
    case 512: return IBV_MTU_512;
    case 1024: return IBV_MTU_1024;
    case 2048: return IBV_MTU_2048;
    case 4096: return IBV_MTU_4096;
    default: return std::nullopt;
    }
}

/// What one side sets on its QP once the endpoints are swapped. Each side
/// computes it from (its own, the peer's) endpoint, so both come to the same
/// path MTU and to depths that fit each other: a side never has more READs
/// or atomics outstanding than the other side accepts (as the RDMA CM pairs
/// initiator depth with responder resources).
struct agreed_settings {
    ibv_mtu path_mtu = IBV_MTU_1024;     ///< The smaller of the two MTUs.
    std::uint8_t max_rd_atomic = 0;      ///< min(our initiator depth, the peer's responder resources)
    std::uint8_t max_dest_rd_atomic = 0; ///< min(our responder resources, the peer's initiator depth)
};

/// Agrees the settings of `local` with `remote`. Throws rcq::error when the
/// peer's MTU is not a valid path MTU (EPROTO) and when the two GIDs are of
/// different address families (EINVAL: RoCE v2 carries a packet in an IPv4
/// or an IPv6 header, and one cannot reach the other).
RCQ_DECL agreed_settings agree(const endpoint& local, const endpoint& remote);

} // namespace rcq

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/agreement.ipp>
#endif
