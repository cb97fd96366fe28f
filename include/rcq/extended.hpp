// rcq/extended.hpp - the extended verbs API (ibv_qp_ex, ibv_cq_ex) as a
// compile-time alternative to ibv_post_send and ibv_poll_cq.
#pragma once

#include <rcq/config.hpp>
#include <rcq/cq.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/device.hpp>
#include <rcq/error.hpp>
#include <rcq/wr.hpp>

#include <infiniband/verbs.h>

#include <cerrno>
#include <cstdint>
#include <span>
#include <string>

namespace rcq {

/// Which post API a send_queue uses, chosen at compile time.
namespace api {
/// ibv_post_send with a chain of ibv_send_wr.
struct legacy {};
/// ibv_wr_start / ibv_wr_<op> / ibv_wr_set_sge / ibv_wr_complete on an
/// ibv_qp_ex. The QP must be created with qp_caps::send_ops.
struct extended {};
} // namespace api

/// The send_ops flags (IBV_QP_EX_WITH_*) for every RC operation rcq builds.
inline constexpr std::uint64_t all_rc_send_ops =
    IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_SEND_WITH_IMM | IBV_QP_EX_WITH_RDMA_WRITE |
    IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM | IBV_QP_EX_WITH_RDMA_READ |
    IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP | IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD;

/// The extended view of a QP made with qp_caps::send_ops; throws when the QP
/// was made without them.
inline ibv_qp_ex* extended_view(ibv_qp* q) {
    ibv_qp_ex* x = ibv_qp_to_qp_ex(q);
    if (x == nullptr)
        throw_invalid("QP 0x" + detail::hex(q->qp_num) + " has no extended post API",
                      "create it with qp_caps::send_ops = rcq::all_rc_send_ops");
    return x;
}

namespace detail {

/// Posts one request through the extended API, the operation chosen from its
/// opcode (a constant when the request's type fixes it).
RCQ_ALWAYS_INLINE bool put_ex(ibv_qp_ex* q, const ibv_send_wr& w) noexcept {
    q->wr_id = w.wr_id;
    q->wr_flags = w.send_flags;
    switch (w.opcode) {
    case IBV_WR_SEND: ibv_wr_send(q); break;
    case IBV_WR_SEND_WITH_IMM: ibv_wr_send_imm(q, w.imm_data); break;
    case IBV_WR_RDMA_WRITE: ibv_wr_rdma_write(q, w.wr.rdma.rkey, w.wr.rdma.remote_addr); break;
    case IBV_WR_RDMA_WRITE_WITH_IMM:
        ibv_wr_rdma_write_imm(q, w.wr.rdma.rkey, w.wr.rdma.remote_addr, w.imm_data);
        break;
    case IBV_WR_RDMA_READ: ibv_wr_rdma_read(q, w.wr.rdma.rkey, w.wr.rdma.remote_addr); break;
    case IBV_WR_ATOMIC_CMP_AND_SWP:
        ibv_wr_atomic_cmp_swp(q, w.wr.atomic.rkey, w.wr.atomic.remote_addr, w.wr.atomic.compare_add,
                              w.wr.atomic.swap);
        break;
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
        ibv_wr_atomic_fetch_add(q, w.wr.atomic.rkey, w.wr.atomic.remote_addr, w.wr.atomic.compare_add);
        break;
    default: return false;
    }
    if (w.send_flags & IBV_SEND_INLINE)
        ibv_wr_set_inline_data(q, reinterpret_cast<void*>(w.sg_list->addr), w.sg_list->length);
    else
        ibv_wr_set_sge_list(q, static_cast<std::size_t>(w.num_sge), w.sg_list);
    return true;
}

/// Posts a chain of requests between one ibv_wr_start and ibv_wr_complete.
/// Returns 0, EINVAL for an opcode the extended API does not take here, or
/// the errno value of ibv_wr_complete.
RCQ_ALWAYS_INLINE int post_ex(ibv_qp_ex* q, const ibv_send_wr& first) noexcept {
    ibv_wr_start(q);
    for (const ibv_send_wr* w = &first; w != nullptr; w = w->next) {
        if (!put_ex(q, *w)) {
            ibv_wr_abort(q);
            return EINVAL;
        }
    }
    return ibv_wr_complete(q);
}

} // namespace detail

/// A completion queue made with ibv_create_cq_ex and polled with
/// ibv_start_poll / ibv_next_poll / ibv_end_poll. poll() fills ibv_wc as
/// rcq::cq::poll does, so the polling policies and the rest of rcq take it
/// unchanged; it is also an rcq::cq, for creating QPs.
class cq_ex : public cq {
public:
    /// Creates an extended CQ of `depth` entries, bound to `channel` if given.
    cq_ex(ibv_context* ctx, int depth, ibv_comp_channel* channel = nullptr)
        : cq(create(ctx, depth, channel)) {}

    /// The extended CQ, for the ibv_start_poll/ibv_next_poll family.
    ibv_cq_ex* get_ex() const noexcept { return reinterpret_cast<ibv_cq_ex*>(get()); }

    /// Up to `out.size()` completions; 0 when none is ready or `out` is
    /// empty (nothing is taken from the CQ then); < 0 on failure.
    [[nodiscard]] RCQ_ALWAYS_INLINE int poll(std::span<ibv_wc> out) const noexcept {
        if (out.empty()) [[unlikely]] return 0;
        ibv_cq_ex* c = get_ex();
        ibv_poll_cq_attr attr{};
        if (int rc = ibv_start_poll(c, &attr); rc != 0) return rc == ENOENT ? 0 : -rc;
        std::size_t n = 0;
        do {
            ibv_wc& wc = out[n++];
            wc.wr_id = c->wr_id;
            wc.status = c->status;
            wc.opcode = ibv_wc_read_opcode(c);
            wc.vendor_err = ibv_wc_read_vendor_err(c);
            wc.byte_len = ibv_wc_read_byte_len(c);
            wc.qp_num = ibv_wc_read_qp_num(c);
            wc.wc_flags = ibv_wc_read_wc_flags(c);
            wc.imm_data = (wc.wc_flags & IBV_WC_WITH_IMM) ? ibv_wc_read_imm_data(c) : 0;
        } while (n < out.size() && ibv_next_poll(c) == 0);
        ibv_end_poll(c);
        return static_cast<int>(n);
    }

private:
    static ibv_cq* create(ibv_context* ctx, int depth, ibv_comp_channel* channel) {
        ibv_cq_init_attr_ex attr{};
        attr.cqe = static_cast<std::uint32_t>(depth);
        attr.channel = channel;
        attr.wc_flags = IBV_WC_EX_WITH_BYTE_LEN | IBV_WC_EX_WITH_IMM | IBV_WC_EX_WITH_QP_NUM;
        ibv_cq_ex* c = ibv_create_cq_ex(ctx, &attr);
        if (c == nullptr)
            throw_error("ibv_create_cq_ex(" + device_name(ctx) + ")",
                        "the device may lack the extended CQ API; use rcq::cq");
        return ibv_cq_ex_to_cq(c);
    }
};

} // namespace rcq
