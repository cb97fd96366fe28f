// expect-error: use of deleted function .*qp\(ibv_pd\*, rcq::cq&&
// A CQ made in the argument list would be destroyed (and refused by verbs,
// leaking) at the end of the statement while the QP still uses it.
#include <rcq/qp.hpp>

void make(rcq::context& ctx, rcq::pd& pd) {
#ifdef RCQ_BREAK
    rcq::qp<rcq::state::reset> q(pd, rcq::cq(ctx, 16));
#else
    rcq::cq cq(ctx, 16);
    rcq::qp<rcq::state::reset> q(pd, cq);
#endif
}

int main() {}
