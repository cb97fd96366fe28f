// rcq/config.hpp - compiler switches shared by every rcq header, each of
// which includes it first.
#pragma once

// rcq is written in C++20 (concepts, std::span, designated initializers).
// Without this, an older -std would meet a long list of errors instead.
#if __cplusplus < 202002L
#error "rcq needs C++20: compile with -std=c++20 (g++ 12, clang 14 or newer); CMake's rcq::rcq target and Conan ask for it, pkg-config's flags do not"
#endif

/// Forces inlining of the post and poll paths, so that rcq's wrappers compile
/// down to the one indirect call that libibverbs itself inlines.
#if defined(__GNUC__) || defined(__clang__)
#define RCQ_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define RCQ_ALWAYS_INLINE inline
#endif

/// Checks of misuse that C++ cannot refuse at compile time (posting on a
/// moved-from handle, ...): on in debug builds (no NDEBUG), off otherwise,
/// where they would cost the hot path. Define RCQ_DEBUG_CHECKS to 0 or 1 to
/// choose, the same in every translation unit of a program.
#ifndef RCQ_DEBUG_CHECKS
#ifdef NDEBUG
#define RCQ_DEBUG_CHECKS 0
#else
#define RCQ_DEBUG_CHECKS 1
#endif
#endif

/// How rcq declares the functions of its set-up paths that are not
/// templates (the endpoint codec, the TCP handshake, the GID choice, error
/// text): `inline` by default, where their definitions
/// (`include/rcq/impl/*.ipp`) are included by the headers themselves and
/// rcq is header-only. With RCQ_SEPARATE_COMPILATION defined, the headers
/// only declare them, and one source file of the program defines them all by
/// including <rcq/impl/src.hpp>; this saves compiling them again in every
/// translation unit. Define it (or not) the same in every translation unit
/// of a program. Templates and the post/poll paths stay in the headers in
/// both modes.
#if defined(RCQ_SEPARATE_COMPILATION)
#define RCQ_DECL
#else
#define RCQ_DECL inline
#endif
