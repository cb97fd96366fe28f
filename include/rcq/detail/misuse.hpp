// rcq/detail/misuse.hpp - stopping at a misuse that only shows at run time.
#pragma once

#include <rcq/config.hpp>

#include <cstdio>
#include <cstdlib>

namespace rcq::detail {

/// Prints "rcq: <what>" on stderr and aborts. For misuse after which nothing
/// safe can follow, such as posting on an empty (moved-from) handle, which
/// would hand verbs a null QP.
[[noreturn, gnu::cold, gnu::noinline]] inline void misuse(const char* what) noexcept {
    std::fprintf(stderr, "rcq: %s\n", what);
    std::fflush(stderr);
    std::abort();
}

} // namespace rcq::detail

/// RCQ_DEBUG_CHECK(condition, message): with RCQ_DEBUG_CHECKS on, stops with
/// `message` (saying what was misused and what to do) unless `condition`
/// holds; with it off, costs nothing and checks nothing.
#if RCQ_DEBUG_CHECKS
#define RCQ_DEBUG_CHECK(condition, message) \
    ((condition) ? void() : ::rcq::detail::misuse(message))
#else
#define RCQ_DEBUG_CHECK(condition, message) void()
#endif
