// rcq/impl/qp.ipp - creating and modifying an RC QP, for rcq::qp.
// Included by <rcq/qp.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/qp.hpp>

#include <rcq/detail/hex.hpp>
#include <rcq/error.hpp>

#include <string>

namespace rcq::detail {

ibv_qp* create_rc_qp(ibv_pd* domain, ibv_cq* sends, ibv_cq* receives, const qp_caps& caps) {
    ibv_qp_init_attr attr{};
    attr.send_cq = sends;
    attr.recv_cq = receives;
    attr.srq = caps.srq;
    attr.qp_type = IBV_QPT_RC;
    attr.sq_sig_all = caps.signal_all ? 1 : 0;
    attr.cap.max_send_wr = caps.max_send_wr;
    attr.cap.max_recv_wr = caps.max_recv_wr;
    attr.cap.max_send_sge = caps.max_send_sge;
    attr.cap.max_recv_sge = caps.max_recv_sge;
    attr.cap.max_inline_data = caps.max_inline_data;
    if (caps.send_ops == 0) {
        if (ibv_qp* q = ibv_create_qp(domain, &attr)) return q;
    } else {
        ibv_qp_init_attr_ex ex{};
        ex.send_cq = attr.send_cq;
        ex.recv_cq = attr.recv_cq;
        ex.srq = attr.srq;
        ex.cap = attr.cap;
        ex.qp_type = attr.qp_type;
        ex.sq_sig_all = attr.sq_sig_all;
        ex.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
        ex.pd = domain;
        ex.send_ops_flags = caps.send_ops;
        if (ibv_qp* q = ibv_create_qp_ex(domain->context, &ex)) return q;
        throw_error("ibv_create_qp_ex(RC, with send_ops)",
                    "the device may lack the extended post API (ibv_wr_*); "
                    "create the QP without qp_caps::send_ops");
    }
    throw_error("ibv_create_qp(RC, send_wr " + std::to_string(caps.max_send_wr) + ", recv_wr " +
                    std::to_string(caps.max_recv_wr) + ")",
                "the device's max_qp_wr and max_sge bound these; `ibv_devinfo -v` shows them");
}

void modify_qp(ibv_qp* q, ibv_qp_attr& attr, int mask, const std::string& step,
               const std::string& hint) {
    if (q == nullptr)
        throw_invalid("rcq::qp: " + step + " on an empty handle",
                      "the handle was moved from (a transition consumes it): use the "
                      "handle the transition returned");
    if (int rc = ibv_modify_qp(q, &attr, mask); rc != 0)
        throw_error("ibv_modify_qp(" + step + ", QPN 0x" + hex(q->qp_num) + ")", hint, rc);
}

} // namespace rcq::detail
