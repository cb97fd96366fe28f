// rcq/buffer/external.hpp - a memory region the caller already registered.
#pragma once

#include <rcq/config.hpp>

#include <rcq/category.hpp>
#include <rcq/error.hpp>

#include <infiniband/verbs.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace rcq::buffer {

/// An MR the caller registered and keeps: rcq uses it and never deregisters
/// it. A QP can only use memory of its own PD, so a connection with this
/// policy runs on the MR's PD and device instead of opening its own.
/// Lifetime: the MR, its PD and its device must outlive the connection.
/// Access: whatever the caller registered the MR with; rcq cannot widen it,
/// so an MR meant for the peer's WRITEs must have been registered with
/// IBV_ACCESS_REMOTE_WRITE.
class external {
public:
    /// Marks this type as a buffer policy.
    using rcq_category = category::buffer;

    /// What to use.
    struct config {
        /// An MR the caller registered (ibv_reg_mr) and keeps until the connection is gone.
        ibv_mr* mr = nullptr;
    };

    /// Uses `cfg.mr`; refuses (rcq::error) an MR of another PD than `domain`.
    external(ibv_pd* domain, const config& cfg, int /*remote_access: fixed at registration*/ = 0)
        : mr_(checked(cfg.mr)) {
        if (domain != nullptr && domain != mr_->pd)
            throw_invalid("rcq::buffer::external: the memory region belongs to another "
                          "protection domain",
                          "a QP can only use memory registered in its own PD");
    }

    /// The PD the connection must use: the one the MR was registered in.
    static ibv_pd* protection_domain(const config& cfg) { return checked(cfg.mr)->pd; }

    /// The registered memory.
    std::span<std::byte> bytes() const noexcept {
        return {static_cast<std::byte*>(mr_->addr), mr_->length};
    }
    /// The MR's local key.
    std::uint32_t lkey() const noexcept { return mr_->lkey; }
    /// The MR's remote key.
    std::uint32_t rkey() const noexcept { return mr_->rkey; }
    /// The caller's MR.
    ibv_mr* region() const noexcept { return mr_; }

    /// One line for the connection's narration.
    static const char* describe() noexcept { return "using the caller's memory region"; }

private:
    static ibv_mr* checked(ibv_mr* mr) {
        if (mr == nullptr)
            throw_invalid("rcq::buffer::external: no memory region given",
                          "set config.mr to an MR from ibv_reg_mr, or use rcq::buffer::owned");
        return mr;
    }

    ibv_mr* mr_;
};

} // namespace rcq::buffer
