// expect-error: rcq::wr_chain<N>: N must be positive
#include <rcq/wr.hpp>

#ifdef RCQ_BREAK
constexpr std::size_t n = 0;
#else
constexpr std::size_t n = 1;
#endif

int main() {
    rcq::wr_chain<n> chain;
    return chain.front().next == nullptr ? 0 : 1;
}
