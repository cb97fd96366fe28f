// expect-error: use of deleted function .*rcq::recv_wr::recv_wr\(ibv_sge&&
// A receive request keeps a pointer to its scatter/gather element: a braced
// temporary would dangle before the post.
#include <rcq/wr.hpp>

#include <vector>

int main() {
    std::vector<std::byte> memory(64);
#ifdef RCQ_BREAK
    rcq::recv_wr r({reinterpret_cast<std::uintptr_t>(memory.data()), 64, 0}, 1);
#else
    const ibv_sge sge{reinterpret_cast<std::uintptr_t>(memory.data()), 64, 0};
    rcq::recv_wr r(sge, 1);
#endif
    return r.num_sge - 1;
}
