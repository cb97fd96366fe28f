// rcq/device.hpp - the list of RDMA devices and an open device context.
#pragma once

#include <rcq/config.hpp>
#include <rcq/detail/handle.hpp>
#include <rcq/error.hpp>

#include <infiniband/verbs.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace rcq {

/// The devices libibverbs sees (ibv_get_device_list). Move-only; frees the
/// list on destruction. Contexts opened from it stay valid after it is gone.
class device_list {
public:
    device_list() {
        int n = 0;
        list_ = ibv_get_device_list(&n);
        if (list_ == nullptr) {
            const int err = errno;
            throw_error("ibv_get_device_list",
                        err == ENOSYS
                            ? "this kernel has no RDMA support (no /sys/class/infiniband); run on "
                              "Soft-RoCE in a VM with tests/softroce/run, or on a machine with RDMA"
                            : "is libibverbs installed with a provider (Debian: ibverbs-providers)?",
                        err);
        }
        size_ = static_cast<std::size_t>(n);
    }
    /// Takes over the list.
    device_list(device_list&& other) noexcept
        : list_(std::exchange(other.list_, nullptr)), size_(std::exchange(other.size_, 0)) {}
    device_list& operator=(device_list&&) = delete;
    device_list(const device_list&) = delete;
    ~device_list() {
        if (list_ != nullptr) ibv_free_device_list(list_);
    }

    /// The devices.
    std::span<ibv_device* const> devices() const noexcept { return {list_, size_}; }
    /// How many devices there are.
    std::size_t size() const noexcept { return size_; }
    /// Whether there are none.
    bool empty() const noexcept { return size_ == 0; }

    /// The device called `name`, or the first device when `name` is empty.
    /// Throws rcq::error listing the devices present when there is no match.
    RCQ_DECL ibv_device* find(std::string_view name) const;

    /// The names of all devices, comma separated (for messages).
    RCQ_DECL std::string names() const;

private:
    ibv_device** list_ = nullptr;
    std::size_t size_ = 0;
};

/// The name of the device behind `ctx`, e.g. "rxe0".
RCQ_DECL std::string device_name(ibv_context* ctx);

/// ibv_query_port for `port_num` (ports count from 1).
RCQ_DECL ibv_port_attr query_port(ibv_context* ctx, std::uint8_t port_num = 1);

/// ibv_query_device: the device's limits (max_qp_wr, max_sge, ...).
RCQ_DECL ibv_device_attr query_device(ibv_context* ctx);

/// An open device (ibv_context). Move-only, the size of a pointer; must
/// outlive every object created from it (PD, CQ, QP, MR). Converts to
/// `ibv_context*`, so it can be passed wherever rcq or verbs take one.
class context {
public:
    /// Opens the device called `name`, or the first one when `name` is empty.
    RCQ_DECL static context open(std::string_view name = {});

    /// Adopts a context opened elsewhere; rcq closes it.
    explicit context(ibv_context* raw) noexcept : ctx_(raw) {}

    /// The raw context.
    ibv_context* get() const noexcept { return ctx_.get(); }
    /// The raw context, for verbs calls.
    operator ibv_context*() const& noexcept { return ctx_.get(); }
    /// Not from a temporary: the object would be destroyed at the end of the
    /// statement, leaving the pointer dangling. Name the owner in a variable.
    operator ibv_context*() && = delete;
    /// The device's name, e.g. "rxe0".
    std::string name() const { return device_name(get()); }
    /// The attributes of port `port_num` (ibv_query_port); throws rcq::error.
    ibv_port_attr port(std::uint8_t port_num = 1) const { return query_port(get(), port_num); }
    /// The device's attributes (ibv_query_device); throws rcq::error.
    ibv_device_attr attributes() const { return query_device(get()); }

private:
    detail::handle<ibv_context, &ibv_close_device> ctx_;
};

static_assert(sizeof(context) == sizeof(ibv_context*));

/// The name libibverbs uses for a port state, e.g. "ACTIVE".
inline std::string_view port_state_name(ibv_port_state s) noexcept {
    return ibv_port_state_str(s);
}

/// The path MTU as bytes (IBV_MTU_1024 -> 1024).
inline int mtu_bytes(ibv_mtu mtu) noexcept {
    return 128 << static_cast<int>(mtu);
}

} // namespace rcq

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/device.ipp>
#endif
