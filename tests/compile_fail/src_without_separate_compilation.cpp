// expect-error: <rcq/impl/src.hpp> is for RCQ_SEPARATE_COMPILATION
// The definitions of the set-up functions are for a program built with
// RCQ_SEPARATE_COMPILATION; header-only, the headers define them already,
// and compiling them here too would define them twice.
#ifndef RCQ_BREAK
#define RCQ_SEPARATE_COMPILATION
#endif
#include <rcq/impl/src.hpp>

int main() {}
