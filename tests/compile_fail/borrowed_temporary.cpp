// expect-error: cannot register a temporary container: keep the memory in a variable
// A temporary container's memory is freed at the end of the statement, long
// before the connection that registered it is done with it.
#include <rcq/buffer/borrowed.hpp>

#include <vector>

int main() {
#ifdef RCQ_BREAK
    rcq::buffer::borrowed::config cfg{.memory = std::vector<char>(4096)};
#else
    std::vector<char> memory(4096);
    rcq::buffer::borrowed::config cfg{.memory = memory};
#endif
    return static_cast<int>(cfg.memory.span().size() != 4096);
}
