// rcq/impl/agreement.ipp - the settings both sides agree on.
// Included by <rcq/agreement.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/agreement.hpp>

#include <algorithm>

namespace rcq {

agreed_settings agree(const endpoint& local, const endpoint& remote) {
    auto ours = mtu_from_bytes(local.mtu);
    auto theirs = mtu_from_bytes(remote.mtu);
    if (!ours)
        throw_invalid("our endpoint's MTU " + std::to_string(local.mtu) +
                          " is not a path MTU (256, 512, 1024, 2048 or 4096 bytes)",
                      "set endpoint::mtu from the port's active MTU", EINVAL);
    if (!theirs)
        throw_invalid("the peer's endpoint carries MTU " + std::to_string(remote.mtu) +
                          ", not a path MTU (256, 512, 1024, 2048 or 4096 bytes)",
                      "the peer is not a matching rcq build, or its endpoint was altered", EPROTO);
    const bool v4 = gid_entry{.gid = local.gid}.is_ipv4();
    if (v4 != gid_entry{.gid = remote.gid}.is_ipv4())
        throw_invalid("our GID " + gid_to_string(local.gid) + " is " + (v4 ? "IPv4" : "IPv6") +
                          " and the peer's " + gid_to_string(remote.gid) + " is " +
                          (v4 ? "IPv6" : "IPv4") +
                          ": RoCE v2 cannot carry packets between the two families",
                      "choose a GID of the same family on one side (the GID index option); "
                      "rcq_devinfo lists a port's GIDs",
                      EINVAL);
    agreed_settings s;
    s.path_mtu = std::min(*ours, *theirs);
    s.max_rd_atomic = std::min(local.initiator_depth, remote.responder_resources);
    s.max_dest_rd_atomic = std::min(local.responder_resources, remote.initiator_depth);
    return s;
}

} // namespace rcq
