// rcq/srq.hpp - a shared receive queue.
#pragma once

#include <rcq/config.hpp>
#include <rcq/detail/handle.hpp>
#include <rcq/error.hpp>
#include <rcq/wr.hpp>

#include <infiniband/verbs.h>

#include <cstdint>
#include <string>

namespace rcq {

template <class W>
concept srq_takes_only_receive_requests = std::derived_from<W, ibv_recv_wr>;

/// A shared receive queue (ibv_create_srq): receives posted here serve every
/// QP created with it (qp_caps::srq), so many connections share one pool of
/// buffers. Move-only, the size of a pointer; must outlive its QPs.
class srq {
public:
    /// Creates a shared receive queue on `domain`; throws rcq::error.
    explicit srq(ibv_pd* domain, std::uint32_t max_wr = 256, std::uint32_t max_sge = 1) {
        ibv_srq_init_attr attr{};
        attr.attr.max_wr = max_wr;
        attr.attr.max_sge = max_sge;
        srq_ = handle(ibv_create_srq(domain, &attr));
        if (!srq_)
            throw_error("ibv_create_srq(max_wr " + std::to_string(max_wr) + ")",
                        "the device's max_srq_wr bounds it; `ibv_devinfo -v` shows it");
    }

    /// The raw SRQ.
    ibv_srq* get() const noexcept { return srq_.get(); }
    /// The raw SRQ, for verbs calls.
    operator ibv_srq*() const& noexcept { return srq_.get(); }
    /// Not from a temporary: the object would be destroyed at the end of the
    /// statement, leaving the pointer dangling. Name the owner in a variable.
    operator ibv_srq*() && = delete;

    /// Posts a chain of receives: exactly ibv_post_srq_recv. Only receive
    /// requests are accepted: a send request is a compile error.
    template <class W>
        requires srq_takes_only_receive_requests<W>
    [[nodiscard]] RCQ_ALWAYS_INLINE int post_recv(W& wr) noexcept {
        ibv_recv_wr* bad;
        return ibv_post_srq_recv(srq_.get(), &wr, &bad);
    }

private:
    using handle = detail::handle<ibv_srq, &ibv_destroy_srq>;
    handle srq_;
};

static_assert(sizeof(srq) == sizeof(ibv_srq*));

} // namespace rcq
