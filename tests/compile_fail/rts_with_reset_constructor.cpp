// expect-error: qp_must_be_created_in_reset
// first-error: static assertion failed: rcq::qp: qp_must_be_created_in_reset: .*rcq::qp<rcq::state::reset> q\(pd, cq\)
#include <rcq/qp.hpp>

#ifdef RCQ_BREAK
using created = rcq::qp<rcq::state::rts>;
#else
using created = rcq::qp<rcq::state::reset>;
#endif

void make(rcq::pd& pd, rcq::cq& cq) {
    created q(pd, cq);
    (void)q;
}

int main() {}
