// rcq/impl/work_completion.ipp - checking a work completion.
// Included by <rcq/work_completion.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/work_completion.hpp>

namespace rcq {

void check_completion(const ibv_wc& wc, std::string_view what) {
    if (wc.status == IBV_WC_SUCCESS) return;
    std::string step = "work completion for " + std::string(what) + ": " +
                       ibv_wc_status_str(wc.status) + " (status " + std::to_string(wc.status) +
                       ", wr_id " + std::to_string(wc.wr_id) + ", vendor_err 0x" +
                       detail::hex(wc.vendor_err) + ")";
    const char* hint = "";
    switch (wc.status) {
    case IBV_WC_RETRY_EXC_ERR:
        hint = "the peer did not acknowledge: is it alive, and are the GIDs and QPNs right?";
        break;
    case IBV_WC_RNR_RETRY_EXC_ERR:
        hint = "the peer had no receive posted: post receives before the go-ahead";
        break;
    case IBV_WC_LOC_PROT_ERR:
        hint = "a scatter/gather element reaches outside its memory region (offset + length "
               "past the registered buffer) or has the wrong lkey: keep it within the buffer";
        break;
    case IBV_WC_REM_ACCESS_ERR:
        hint = "the remote range reaches outside the peer's registered memory (offset + length "
               "past its region), the rkey is wrong, or the peer did not grant that access";
        break;
    case IBV_WC_LOC_LEN_ERR:
    case IBV_WC_LOC_QP_OP_ERR:
        hint = "a message longer than the posted receive, or a request the QP cannot take";
        break;
    case IBV_WC_REM_OP_ERR:
    case IBV_WC_REM_INV_REQ_ERR:
        hint = "the peer could not take the request, e.g. its posted receive was smaller than "
               "the message";
        break;
    case IBV_WC_WR_FLUSH_ERR:
        hint = "the QP went to the ERROR state; an earlier completion says why";
        break;
    default: break;
    }
    throw_error(step, hint, EIO);
}

} // namespace rcq
