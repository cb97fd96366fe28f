// expect-error: RDMA atomics act on 8-byte integer words
// A double is 8 bytes, but fetch-and-add would add integers to its bits.
#include <rcq/remote.hpp>

#include <cstdint>

rcq::remote_word pick(const rcq::remote_region& peer) {
#ifdef RCQ_BREAK
    return peer.word<double>(0);
#else
    return peer.word<std::int64_t>(0);
#endif
}

int main() {}
