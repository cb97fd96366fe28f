// rcq/impl/gid.ipp - a port's GID table and the GID choice.
// Included by <rcq/gid.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/gid.hpp>

namespace rcq {

std::string gid_entry::address() const {
    char text[INET6_ADDRSTRLEN] = {};
    return inet_ntop(AF_INET6, gid.data(), text, sizeof text) != nullptr ? text : "?";
}

std::string gid_entry::netdev() const {
    char name[IF_NAMESIZE] = {};
    return ndev_ifindex != 0 && if_indextoname(ndev_ifindex, name) != nullptr ? name : "";
}

std::string gid_entry::kind() const {
    if (type == gid_type::ib) return "IB";
    return std::string(to_string(type)) + (is_ipv4() ? " IPv4" : " IPv6") +
           (is_link_local() ? " link-local" : "");
}

std::vector<gid_entry> gid_table(ibv_context* ctx, std::uint8_t port_num) {
    const ibv_port_attr port = query_port(ctx, port_num);
    std::vector<gid_entry> out;
    for (int i = 0; i < port.gid_tbl_len; ++i) {
        ibv_gid_entry raw{};
        // Unused slots fail with ENODATA; they are skipped, not errors.
        if (ibv_query_gid_ex(ctx, port_num, static_cast<std::uint32_t>(i), &raw, 0) != 0) continue;
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

std::optional<gid_entry> preferred_gid(const std::vector<gid_entry>& table, address_family peer) {
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

gid_entry choose_gid(ibv_context* ctx, std::uint8_t port_num, std::optional<int> index,
                     address_family peer) {
    const std::vector<gid_entry> table = gid_table(ctx, port_num);
    const std::optional<gid_entry> best = preferred_gid(table, peer);
    const std::string where = device_name(ctx) + " port " + std::to_string(port_num);
    const std::string suggestion =
        best ? "the RoCE v2 " + std::string(best->is_ipv4() ? "IPv4" : "IPv6") + " GID is index " +
                   std::to_string(best->index) + ", or omit the index"
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
    throw_error("GID index " + std::to_string(*index) + " on " + where +
                    " is empty or out of range",
                suggestion, EINVAL);
}

} // namespace rcq
