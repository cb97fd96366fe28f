// rcq/config.hpp - compiler switches shared by every rcq header.
#pragma once

/// Forces inlining of the post and poll paths, so that rcq's wrappers compile
/// down to the one indirect call that libibverbs itself inlines.
#if defined(__GNUC__) || defined(__clang__)
#define RCQ_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define RCQ_ALWAYS_INLINE inline
#endif
