// expect-error: inlined\(\).*constraints not satisfied|no matching function for call to .*inlined\(\)
// A READ brings data back into local memory: there is nothing to inline.
#include <rcq/wr.hpp>

int main() {
    const ibv_sge sge{};
    const rcq::remote_slice from{};
#ifdef RCQ_BREAK
    rcq::read_op r(sge, from, 1);
#else
    rcq::write_op r(sge, from, 1);
#endif
    r.inlined();
    return 0;
}
