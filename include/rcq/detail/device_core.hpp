// rcq/detail/device_core.hpp - what rcq::connection and rcq::resources both
// hold on a device: context, port, GID, PD, buffer, poll policy and CQ.
#pragma once

#include <rcq/config.hpp>

#include <rcq/cq.hpp>
#include <rcq/detail/qp_setup.hpp>
#include <rcq/device.hpp>
#include <rcq/error.hpp>
#include <rcq/gid.hpp>
#include <rcq/pd.hpp>

#include <infiniband/verbs.h>

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>

namespace rcq::detail {

/// Where and how a device_core is set up.
struct device_settings {
    /// A context opened elsewhere (the RDMA CM's), or nullptr: the buffer's
    /// PD's context when it brings one, else `device` is opened.
    ibv_context* given = nullptr;
    std::string device{};            ///< The device to open; empty: the first.
    std::uint8_t port = 1;           ///< The port, from 1.
    std::optional<int> gid_index{};  ///< The GID index; empty: chosen for `peer`.
    address_family peer = address_family::any; ///< The peer's family, for the GID choice.
    unsigned remote_access = 0;      ///< IBV_ACCESS_REMOTE_* on the buffer.
    int cq_depth = 1;                ///< Entries of the CQ.
};

/// The device, its port and GID, the PD, the registered buffer, the poll
/// policy and its CQ, set up in that order and narrated; destroyed in the
/// reverse order, as verbs requires. Neither copyable nor movable.
template <class Poll, class Buffer>
struct device_core {
    /// Sets everything up; throws rcq::error naming the step.
    device_core(const device_settings& s, const typename Buffer::config& cfg, const narrator& say)
        : own_ctx(open(s, cfg, say)),
          ctx(s.given != nullptr    ? s.given
              : own_ctx             ? own_ctx->get()
                                    : borrowed_pd(cfg)->context),
          port(query_port(ctx, s.port)),
          gid(pick_gid(ctx, s.port, port, s.gid_index, s.peer, say)),
          own_pd(borrowed_pd(cfg) ? std::nullopt : std::optional<rcq::pd>(make_pd(ctx, say))),
          pd(own_pd ? own_pd->get() : borrowed_pd(cfg)),
          buffer(make_buffer<Buffer>(pd, cfg, static_cast<int>(s.remote_access), say)),
          poll(ctx),
          cq(make_cq(poll, ctx, s.cq_depth, say)) {}

    device_core(const device_core&) = delete;
    device_core& operator=(const device_core&) = delete;

    /// The PD of the buffer policy's own registration, if it brings one.
    static ibv_pd* borrowed_pd(const typename Buffer::config& cfg) {
        if constexpr (brings_own_pd<Buffer>)
            return Buffer::protection_domain(cfg);
        else
            return nullptr;
    }

    std::optional<context> own_ctx; ///< Empty when the context comes from elsewhere.
    ibv_context* ctx;               ///< The device context.
    ibv_port_attr port;             ///< The port's attributes.
    gid_entry gid;                  ///< The GID in use.
    std::optional<rcq::pd> own_pd;  ///< Empty when the buffer brings its own PD.
    ibv_pd* pd;                     ///< The PD in use.
    Buffer buffer;                  ///< The registered memory.
    Poll poll;                      ///< May own a completion channel, which must outlive the CQ.
    rcq::cq cq;                     ///< The CQ.

private:
    static std::optional<context> open(const device_settings& s, const typename Buffer::config& cfg,
                                       const narrator& say) {
        if (s.given != nullptr) return std::nullopt;
        if (ibv_pd* given = borrowed_pd(cfg)) {
            const std::string name = device_name(given->context);
            if (!s.device.empty() && s.device != name)
                throw_error("the buffer's memory region is on " + name + ", not on " + s.device,
                            "drop the device option, or register the memory on " + s.device,
                            EINVAL);
            say("using device " + name + " and the protection domain of the caller's memory region");
            return std::nullopt;
        }
        return open_device(s.device, say);
    }
};

} // namespace rcq::detail
