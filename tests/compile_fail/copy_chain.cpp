// expect-error: use of deleted function .*rcq::wr_chain<N>::wr_chain\(const rcq::wr_chain<N>&\)
// The chain's links point into the chain itself: a copy would link into the
// original.
#include <rcq/wr.hpp>

int main() {
    rcq::wr_chain<4> chain;
#ifdef RCQ_BREAK
    rcq::wr_chain<4> copy(chain);
#else
    rcq::wr_chain<4> copy;
#endif
    return copy[0].next == &copy[1] && chain[0].next == &chain[1] ? 0 : 1;
}
