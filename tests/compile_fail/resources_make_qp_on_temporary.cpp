// expect-error: use of deleted function .*rcq::resources<.*>::make_qp\(\) const ?&&
// Temporary resources are destroyed at the end of the statement, PD and CQ
// with them, while the QP made from them lives on.
#include <rcq/resources.hpp>

rcq::qp<rcq::state::init> make(const rcq::resources<>& named) {
#ifdef RCQ_BREAK
    (void)named;
    return rcq::resources<>().make_qp();
#else
    return named.make_qp();
#endif
}

int main() {}
