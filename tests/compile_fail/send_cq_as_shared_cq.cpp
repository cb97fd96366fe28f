// expect-error: shared_cq_must_be_a_plain_cq
// first-error: static assertion failed: rcq::qp: shared_cq_must_be_a_plain_cq: .*pass an rcq::cq
// A send_cq alone would receive the receive completions too.
#include <rcq/qp.hpp>

void make(rcq::pd& pd, rcq::send_cq& sends, rcq::recv_cq& receives, rcq::cq& shared) {
#ifdef RCQ_BREAK
    (void)shared;
    (void)receives;
    rcq::qp<rcq::state::reset> q(pd, sends);
#else
    rcq::qp<rcq::state::reset> q(pd, shared);
    rcq::qp<rcq::state::reset> q2(pd, sends, receives);
#endif
}

int main() {}
