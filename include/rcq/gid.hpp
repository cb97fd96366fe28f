// rcq/gid.hpp - a port's GID table and the choice of the RoCE v2 GID.
#pragma once

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
    std::string address() const {
        char text[INET6_ADDRSTRLEN] = {};
        return inet_ntop(AF_INET6, gid.data(), text, sizeof text) != nullptr ? text : "?";
    }
    /// The network device behind this GID (e.g. "eth0"), or "" if none.
    std::string netdev() const {
        char name[IF_NAMESIZE] = {};
        return ndev_ifindex != 0 && if_indextoname(ndev_ifindex, name) != nullptr ? name : "";
    }
    /// "RoCE v2 IPv4" and so on.
    std::string kind() const {
        if (type == gid_type::ib) return "IB";
        return std::string(to_string(type)) + (is_ipv4() ? " IPv4" : " IPv6") +
               (is_link_local() ? " link-local" : "");
    }
};

/// Every valid GID of `port_num` on `ctx`, in index order.
inline std::vector<gid_entry> gid_table(ibv_context* ctx, std::uint8_t port_num = 1) {
    const ibv_port_attr port = query_port(ctx, port_num);
    std::vector<gid_entry> out;
    for (int i = 0; i < port.gid_tbl_len; ++i) {
        ibv_gid_entry raw{};
        // Unused slots fail with ENODATA; they are skipped, not errors.
        if (ibv_query_gid_ex(ctx, port_num, static_cast<std::uint32_t>(i), &raw, 0) != 0)
            continue;
        gid_entry e;
        e.index = raw.gid_index;
        e.type = raw.gid_type == IBV_GID_TYPE_ROCE_V2   ? gid_type::roce_v2
                 : raw.gid_type == IBV_GID_TYPE_ROCE_V1 ? gid_type::roce_v1
                                                        : gid_type::ib;
        std::memcpy(e.gid.data(), raw.gid.raw, 16);
        e.ndev_ifindex = raw.ndev_ifindex;
        out.push_back(e);
    }
    return out;
}

/// The address family of the peer's address, when the caller knows it
/// (e.g. the TCP handshake's server address); `any` when not.
enum class address_family { any, ipv4, ipv6 };

/// The GID rcq uses when none is named, among the RoCE v2 entries: a
/// routable one of the peer's family (IPv4 when the family is not known),
/// then a link-local one of that family, then the same two of the other
/// family; nothing when the port has no RoCE v2 GID. A link-local result is
/// never used silently: rcq::connection says so in its narration.
inline std::optional<gid_entry> preferred_gid(const std::vector<gid_entry>& table,
                                              address_family peer = address_family::any) {
    const bool want_v4 = peer != address_family::ipv6;
    std::optional<gid_entry> best;
    int best_rank = 4;
    for (const gid_entry& e : table) {
        if (e.type != gid_type::roce_v2) continue;
        const int rank = (e.is_ipv4() == want_v4 ? 0 : 2) + (e.is_link_local() ? 1 : 0);
        if (rank < best_rank) {
            best = e;
            best_rank = rank;
        }
    }
    return best;
}

/// The GID to use on `port_num`: the RoCE v2 GID at `index` when one is
/// given, else the preferred one for a peer of family `peer`. Throws rcq::error with the right index as a
/// hint when `index` is empty, out of range or not RoCE v2.
inline gid_entry choose_gid(ibv_context* ctx, std::uint8_t port_num,
                            std::optional<int> index = std::nullopt,
                            address_family peer = address_family::any) {
    const std::vector<gid_entry> table = gid_table(ctx, port_num);
    const std::optional<gid_entry> best = preferred_gid(table, peer);
    const std::string where = device_name(ctx) + " port " + std::to_string(port_num);
    const std::string suggestion =
        best ? "the RoCE v2 " + std::string(best->is_ipv4() ? "IPv4" : "IPv6") +
                   " GID is index " + std::to_string(best->index) + ", or omit the index"
             : "give the port's network device an IP address; `rcq_devinfo` lists the GIDs";
    if (!index) {
        if (best) return *best;
        throw_error(where + " has no RoCE v2 GID", suggestion, ENODEV);
    }
    for (const gid_entry& e : table) {
        if (static_cast<int>(e.index) != *index) continue;
        if (e.type == gid_type::roce_v2) return e;
        throw_error("GID index " + std::to_string(*index) + " on " + where + " is " + e.kind() +
                        ", rcq needs RoCE v2",
                    suggestion, EINVAL);
    }
    throw_error("GID index " + std::to_string(*index) + " on " + where + " is empty or out of range",
                suggestion, EINVAL);
}

} // namespace rcq
