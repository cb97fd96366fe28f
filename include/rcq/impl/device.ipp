// rcq/impl/device.ipp - opening devices and querying them.
// Included by <rcq/device.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/device.hpp>

namespace rcq {

ibv_device* device_list::find(std::string_view name) const {
    if (empty())
        throw_error("no RDMA device found",
                    "load a driver, e.g. Soft-RoCE: `rdma link add rxe0 type rxe netdev eth0`, "
                    "or run through tests/softroce/run",
                    ENODEV);
    if (name.empty()) return list_[0];
    for (ibv_device* dev : devices())
        if (name == ibv_get_device_name(dev)) return dev;
    throw_error("RDMA device '" + std::string(name) + "' not found",
                "devices present: " + names() + "; pass one of them, or none for the first",
                ENODEV);
}

std::string device_list::names() const {
    std::string out;
    for (ibv_device* dev : devices()) {
        if (!out.empty()) out += ", ";
        out += ibv_get_device_name(dev);
    }
    return out.empty() ? "(none)" : out;
}

std::string device_name(ibv_context* ctx) {
    return ibv_get_device_name(ctx->device);
}

ibv_port_attr query_port(ibv_context* ctx, std::uint8_t port_num) {
    ibv_port_attr attr{};
    if (int rc = ibv_query_port(ctx, port_num, &attr); rc != 0)
        throw_error("ibv_query_port(" + device_name(ctx) + ", port " + std::to_string(port_num) +
                        ")",
                    "ports count from 1; `ibv_devinfo -d " + device_name(ctx) + "` lists them", rc);
    return attr;
}

ibv_device_attr query_device(ibv_context* ctx) {
    ibv_device_attr attr{};
    if (int rc = ibv_query_device(ctx, &attr); rc != 0)
        throw_error("ibv_query_device(" + device_name(ctx) + ")", {}, rc);
    return attr;
}

context context::open(std::string_view name) {
    device_list list;
    ibv_device* dev = list.find(name);
    ibv_context* raw = ibv_open_device(dev);
    if (raw == nullptr)
        throw_error(std::string("ibv_open_device(") + ibv_get_device_name(dev) + ")",
                    "check permissions on /dev/infiniband/uverbs*");
    return context(raw);
}

} // namespace rcq
