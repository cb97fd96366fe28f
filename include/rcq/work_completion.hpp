// rcq/work_completion.hpp - reading and checking work completions.
#pragma once

#include <rcq/config.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/error.hpp>

#include <infiniband/verbs.h>

#include <string>
#include <string_view>

namespace rcq {

/// The name of a completion's opcode, e.g. "RECV".
inline const char* to_string(ibv_wc_opcode op) noexcept {
    switch (op) {
    case IBV_WC_SEND: return "SEND";
    case IBV_WC_RDMA_WRITE: return "RDMA_WRITE";
    case IBV_WC_RDMA_READ: return "RDMA_READ";
    case IBV_WC_COMP_SWAP: return "COMP_SWAP";
    case IBV_WC_FETCH_ADD: return "FETCH_ADD";
    case IBV_WC_BIND_MW: return "BIND_MW";
    case IBV_WC_LOCAL_INV: return "LOCAL_INV";
    case IBV_WC_RECV: return "RECV";
    case IBV_WC_RECV_RDMA_WITH_IMM: return "RECV_RDMA_WITH_IMM";
    default: return "opcode";
    }
}

/// Throws rcq::error for a completion whose status is not success, with the
/// status text, WR id and vendor error. Verbs leave a failed completion's
/// opcode undefined, so `what` names the operation instead.
RCQ_DECL void check_completion(const ibv_wc& wc, std::string_view what);

} // namespace rcq

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/work_completion.ipp>
#endif
