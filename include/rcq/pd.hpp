// rcq/pd.hpp - a protection domain.
#pragma once

#include <rcq/detail/handle.hpp>
#include <rcq/device.hpp>
#include <rcq/error.hpp>

#include <infiniband/verbs.h>

namespace rcq {

/// A protection domain (ibv_alloc_pd). Move-only, the size of a pointer.
/// Must outlive the MRs and QPs created in it, and be outlived by its context.
class pd {
public:
    explicit pd(const context& ctx) : pd_(ibv_alloc_pd(ctx.get())) {
        if (!pd_) throw_error("ibv_alloc_pd(" + ctx.name() + ")");
    }
    ibv_pd* get() const noexcept { return pd_.get(); }

private:
    detail::handle<ibv_pd, &ibv_dealloc_pd> pd_;
};

static_assert(sizeof(pd) == sizeof(ibv_pd*));

} // namespace rcq
