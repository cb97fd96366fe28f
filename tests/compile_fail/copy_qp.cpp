// expect-error: use of deleted function .*rcq::qp<rcq::state::rts>::qp\(const rcq::qp<rcq::state::rts>&\)
// Two handles to one QP would destroy it twice: a qp is move-only.
#include <rcq/qp.hpp>

#include <utility>

rcq::qp<rcq::state::rts> pass(rcq::qp<rcq::state::rts>& q) {
#ifdef RCQ_BREAK
    rcq::qp<rcq::state::rts> copy(q);
#else
    rcq::qp<rcq::state::rts> copy(std::move(q));
#endif
    return copy;
}

int main() {}
