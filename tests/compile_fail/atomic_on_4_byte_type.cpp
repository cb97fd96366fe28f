// expect-error: RDMA atomics act on 8-byte integer words
#include <rcq/remote.hpp>

#include <cstdint>

rcq::remote_word pick(const rcq::remote_region& peer) {
#ifdef RCQ_BREAK
    return peer.word<std::uint32_t>(0);
#else
    return peer.word<std::uint64_t>(0);
#endif
}

int main() {}
