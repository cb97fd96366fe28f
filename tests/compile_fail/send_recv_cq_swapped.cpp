// expect-error: no matching function for call to .*qp\(rcq::pd&, rcq::recv_cq&, rcq::send_cq&\)
// The two CQs have their own types, so they cannot be swapped.
#include <rcq/qp.hpp>

void make(rcq::pd& pd, rcq::send_cq& sends, rcq::recv_cq& receives) {
#ifdef RCQ_BREAK
    rcq::qp<rcq::state::reset> q(pd, receives, sends);
#else
    rcq::qp<rcq::state::reset> q(pd, sends, receives);
#endif
}

int main() {}
