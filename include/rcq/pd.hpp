// rcq/pd.hpp - a protection domain.
#pragma once

#include <rcq/config.hpp>

#include <rcq/detail/handle.hpp>
#include <rcq/device.hpp>
#include <rcq/error.hpp>

#include <infiniband/verbs.h>

namespace rcq {

/// A protection domain (ibv_alloc_pd). Move-only, the size of a pointer.
/// Must outlive the MRs and QPs created in it, and be outlived by its context.
/// Converts to `ibv_pd*`.
class pd {
public:
    /// Allocates a protection domain on `ctx`; throws rcq::error.
    explicit pd(ibv_context* ctx) : pd_(ibv_alloc_pd(ctx)) {
        if (!pd_) throw_error("ibv_alloc_pd(" + device_name(ctx) + ")");
    }
    /// Adopts a PD allocated elsewhere; rcq deallocates it.
    static pd adopt(ibv_pd* raw) noexcept { return pd(raw); }

    /// The raw PD.
    ibv_pd* get() const noexcept { return pd_.get(); }
    /// The raw PD, for verbs calls.
    operator ibv_pd*() const& noexcept { return pd_.get(); }
    /// Not from a temporary: the object would be destroyed at the end of the
    /// statement, leaving the pointer dangling. Name the owner in a variable.
    operator ibv_pd*() && = delete;

private:
    explicit pd(ibv_pd* raw) noexcept : pd_(raw) {}

    detail::handle<ibv_pd, &ibv_dealloc_pd> pd_;
};

static_assert(sizeof(pd) == sizeof(ibv_pd*));

} // namespace rcq
