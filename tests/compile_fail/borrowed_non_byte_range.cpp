// expect-error: for other elements write \{\.memory = std::as_writable_bytes\(std::span\(range\)\)\}
// A borrowed buffer is registered as bytes: a range of ints is refused, and
// the diagnostic says how to pass its bytes instead.
#include <rcq/buffer/borrowed.hpp>

#include <array>
#include <cstdint>
#include <vector>

int main() {
#ifdef RCQ_BREAK
    std::vector<int> memory(1024);
    rcq::buffer::borrowed::config cfg{.memory = memory};
#else
    std::array<std::uint8_t, 4096> memory{};
    rcq::buffer::borrowed::config cfg{.memory = memory};
#endif
    return static_cast<int>(cfg.memory.span().size() != 4096);
}
