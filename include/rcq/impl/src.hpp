// rcq/impl/src.hpp - the definitions of rcq's set-up functions that are not
// templates, for a program built with RCQ_SEPARATE_COMPILATION.
//
// In that mode the headers only declare these functions (the endpoint codec,
// the TCP handshake, device and GID choice, the options checks, QP creation
// and transitions, the owned buffer's mapping, error text). Exactly one source
// file of the program includes this header, with RCQ_SEPARATE_COMPILATION
// defined there as in every other translation unit:
//
//     // rcq_src.cpp
//     #include <rcq/impl/src.hpp>
//
// and is compiled and linked like any other. Without the macro, rcq is
// header-only and this file is not needed.
#pragma once

#include <rcq/config.hpp>

#if !defined(RCQ_SEPARATE_COMPILATION)
#error                                                                                             \
    "<rcq/impl/src.hpp> is for RCQ_SEPARATE_COMPILATION: define it in every translation unit of the program, or do not compile this file (rcq is header-only without it)"
#endif

#include <rcq/impl/agreement.ipp>
#include <rcq/impl/buffer/owned.ipp>
#include <rcq/impl/connection.ipp>
#include <rcq/impl/cq.ipp>
#include <rcq/impl/deadline.ipp>
#include <rcq/impl/detail/auth.ipp>
#include <rcq/impl/detail/hex.ipp>
#include <rcq/impl/detail/qp_setup.ipp>
#include <rcq/impl/detail/socket.ipp>
#include <rcq/impl/detail/tcp_arrival.ipp>
#include <rcq/impl/detail/tcp_go_ahead.ipp>
#include <rcq/impl/device.ipp>
#include <rcq/impl/endpoint.ipp>
#include <rcq/impl/error.ipp>
#include <rcq/impl/gid.ipp>
#include <rcq/impl/handshake/tcp.ipp>
#include <rcq/impl/mr.ipp>
#include <rcq/impl/qp.ipp>
#include <rcq/impl/secret.ipp>
#include <rcq/impl/work_completion.ipp>
