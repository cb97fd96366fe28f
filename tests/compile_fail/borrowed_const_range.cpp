// expect-error: borrowed needs memory it may write to: pass a non-const range
// Receives and the peer's WRITEs land in a borrowed buffer: read-only memory
// is refused.
#include <rcq/buffer/borrowed.hpp>

#include <string>

int main() {
#ifdef RCQ_BREAK
    const std::string memory(4096, '\0');
#else
    std::string memory(4096, '\0');
#endif
    rcq::buffer::borrowed::config cfg{.memory = memory};
    return static_cast<int>(cfg.memory.span().size() != 4096);
}
