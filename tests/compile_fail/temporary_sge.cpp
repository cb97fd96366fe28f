// expect-error: use of deleted function
// A work request keeps a pointer to its scatter/gather element; built from a
// temporary, that pointer would dangle before the request is posted.
#include <rcq/wr.hpp>

#include <vector>

int main() {
    std::vector<std::byte> memory(64);
    rcq::remote_slice to{};
#ifdef RCQ_BREAK
    rcq::write_op w(ibv_sge{reinterpret_cast<std::uintptr_t>(memory.data()), 64, 0}, to, 1);
#else
    const ibv_sge sge{reinterpret_cast<std::uintptr_t>(memory.data()), 64, 0};
    rcq::write_op w(sge, to, 1);
#endif
    return static_cast<int>(w.num_sge) - 1;
}
