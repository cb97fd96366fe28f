// rcq/mr.hpp - a registered memory region.
#pragma once

#include <rcq/config.hpp>
#include <rcq/detail/handle.hpp>
#include <rcq/error.hpp>
#include <rcq/pd.hpp>

#include <infiniband/verbs.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace rcq {

namespace detail {
/// A failed ibv_reg_mr of `bytes` with errno `err`: throws rcq::error,
/// hinting at the locked-memory limit where that is the likely cause.
[[noreturn]] RCQ_DECL void throw_reg_mr_failed(std::size_t bytes, int err);
} // namespace detail

/// Memory registered with a PD (ibv_reg_mr). Move-only, the size of a
/// pointer. The memory must stay allocated for the MR's lifetime; the MR must
/// be gone before its PD.
class mr {
public:
    /// Registers `bytes` with `access` (IBV_ACCESS_*). Least privilege by
    /// default: local write only; remote access is the caller's explicit choice.
    mr(ibv_pd* domain, std::span<std::byte> bytes, int access = IBV_ACCESS_LOCAL_WRITE)
        : mr_(ibv_reg_mr(domain, bytes.data(), bytes.size(), access)) {
        if (!mr_) detail::throw_reg_mr_failed(bytes.size(), errno);
    }
    /// Adopts an MR registered elsewhere; rcq deregisters it.
    explicit mr(ibv_mr* raw) noexcept : mr_(raw) {}

    /// The raw MR.
    ibv_mr* get() const noexcept { return mr_.get(); }
    /// The local key.
    std::uint32_t lkey() const noexcept { return mr_->lkey; }
    /// The remote key.
    std::uint32_t rkey() const noexcept { return mr_->rkey; }
    /// The registered memory's first byte.
    std::byte* data() const noexcept { return static_cast<std::byte*>(mr_->addr); }
    /// The registered length in bytes.
    std::size_t size() const noexcept { return mr_->length; }
    /// The registered memory.
    std::span<std::byte> bytes() const noexcept { return {data(), size()}; }

private:
    detail::handle<ibv_mr, &ibv_dereg_mr> mr_;
};

static_assert(sizeof(mr) == sizeof(ibv_mr*));

} // namespace rcq

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/mr.ipp>
#endif
