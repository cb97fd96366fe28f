// What the rdma tests share: the device under test and proof that it is real.
#pragma once

#include <rcq/device.hpp>
#include <rcq/gid.hpp>
#include <rcq/qp.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <chrono>

namespace rdma_test {

/// The device to test: $RCQ_DEVICE (set by tests/softroce/run), else the first.
inline std::string device_name() {
    const char* name = std::getenv("RCQ_DEVICE");
    return name != nullptr ? name : "";
}

/// $RCQ_GID_INDEX when set, else rcq's automatic choice.
inline std::optional<int> gid_index() {
    const char* index = std::getenv("RCQ_GID_INDEX");
    if (index == nullptr || *index == '\0') return std::nullopt;
    return std::atoi(index);
}

/// Packets the port has sent and received, read from the kernel's counters:
/// Soft-RoCE keeps them in hw_counters/, hardware in counters/. They rise
/// only when real RoCE packets go through the driver.
struct packet_counts {
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
};

inline std::optional<std::uint64_t> read_counter(const std::string& path) {
    std::ifstream in(path);
    std::uint64_t value = 0;
    if (in >> value) return value;
    return std::nullopt;
}

inline packet_counts read_packet_counts(const std::string& device, int port = 1) {
    const std::string base =
        "/sys/class/infiniband/" + device + "/ports/" + std::to_string(port) + "/";
    // The kernel caches hw_counters for `lifespan` ms: wait that long, so the
    // value read is fresh rather than the one read just before.
    const auto lifespan = read_counter(base + "hw_counters/lifespan").value_or(0);
    std::this_thread::sleep_for(std::chrono::milliseconds(lifespan + 5));
    packet_counts c;
    if (auto sent = read_counter(base + "hw_counters/sent_pkts")) {
        c.sent = *sent;
        c.received = read_counter(base + "hw_counters/rcvd_pkts").value_or(0);
    } else {
        c.sent = read_counter(base + "counters/port_xmit_packets").value_or(0);
        c.received = read_counter(base + "counters/port_rcv_packets").value_or(0);
    }
    return c;
}

/// RTR attributes towards QP `qpn` (initial PSN `psn`) on the same port,
/// through GID `gid`: how the tests connect QPs of one process.
inline rcq::rtr_attrs towards(const rcq::gid_entry& gid, const ibv_port_attr& port,
                              std::uint32_t qpn, std::uint32_t psn) {
    return {.dest_qpn = qpn,
            .rq_psn = psn,
            .dlid = port.lid,
            .dgid = gid.gid,
            .sgid_index = static_cast<std::uint8_t>(gid.index),
            .path_mtu = port.active_mtu};
}

/// Fails the test unless a real verbs device with an ACTIVE port is present.
inline void require_real_device(const rcq::context& ctx) {
    const ibv_port_attr port = ctx.port(1);
    ASSERT_EQ(port.state, IBV_PORT_ACTIVE) << ctx.name() << " port 1 is not ACTIVE";
    ASSERT_EQ(ctx.get()->device->transport_type, IBV_TRANSPORT_IB)
        << ctx.name() << " is not an InfiniBand-transport (RoCE) device";
}

} // namespace rdma_test
