// rcq/gid.hpp - a port's GID table and the choice of the RoCE v2 GID.
#pragma once

#include <rcq/config.hpp>
#include <rcq/device.hpp>
#include <rcq/error.hpp>

#include <infiniband/verbs.h>
#include <arpa/inet.h>
#include <net/if.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace rcq {

enum class gid_type { ib, roce_v1, roce_v2 };

inline const char* to_string(gid_type t) noexcept {
    switch (t) {
    case gid_type::ib: return "IB";
    case gid_type::roce_v1: return "RoCE v1";
    case gid_type::roce_v2: return "RoCE v2";
    }
    return "unknown";
}

/// One valid entry of a port's GID table.
struct gid_entry {
    /// The GID's index in the port's table.
    std::uint32_t index = 0;
    /// RoCE v1, RoCE v2 or InfiniBand.
    gid_type type = gid_type::ib;
    /// The 16 bytes of the GID.
    std::array<std::uint8_t, 16> gid{};
    std::uint32_t ndev_ifindex = 0; ///< The network device's ifindex; 0 when none is attached.

    /// An IPv4 address in IPv4-mapped form, the form RoCE v2 routes over IPv4.
    bool is_ipv4() const noexcept {
        static constexpr std::uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        return std::memcmp(gid.data(), prefix, sizeof prefix) == 0;
    }
    /// A link-local IPv6 address (fe80::/10): reaches only peers on the same
    /// Ethernet segment, and only through that port.
    bool is_link_local() const noexcept { return gid[0] == 0xfe && (gid[1] & 0xc0) == 0x80; }
    /// The GID as an IPv6 address, e.g. "::ffff:10.0.2.15" or "fe80::1".
    RCQ_DECL std::string address() const;
    /// The network device behind this GID (e.g. "eth0"), or "" if none.
    RCQ_DECL std::string netdev() const;
    /// "RoCE v2 IPv4" and so on.
    RCQ_DECL std::string kind() const;
};

/// Every valid GID of `port_num` on `ctx`, in index order.
RCQ_DECL std::vector<gid_entry> gid_table(ibv_context* ctx, std::uint8_t port_num = 1);

/// The address family of the peer's address, when the caller knows it
/// (e.g. the TCP handshake's server address); `any` when not.
enum class address_family { any, ipv4, ipv6 };

/// The GID rcq uses when none is named, among the RoCE v2 entries: a
/// routable one of the peer's family (IPv4 when the family is not known),
/// then a link-local one of that family, then the same two of the other
/// family; nothing when the port has no RoCE v2 GID. A link-local result is
/// never used silently: rcq::connection says so in its narration.
RCQ_DECL std::optional<gid_entry> preferred_gid(const std::vector<gid_entry>& table,
                                                address_family peer = address_family::any);

/// The GID to use on `port_num`: the RoCE v2 GID at `index` when one is
/// given, else the preferred one for a peer of family `peer`. Throws rcq::error with the right index as a
/// hint when `index` is empty, out of range or not RoCE v2.
RCQ_DECL gid_entry choose_gid(ibv_context* ctx, std::uint8_t port_num,
                              std::optional<int> index = std::nullopt,
                              address_family peer = address_family::any);

} // namespace rcq

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/gid.ipp>
#endif
