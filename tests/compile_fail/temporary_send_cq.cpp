// expect-error: use of deleted function .*qp\(ibv_pd\*, rcq::send_cq&&
#include <rcq/qp.hpp>

void make(rcq::context& ctx, rcq::pd& pd, rcq::recv_cq& receives) {
#ifdef RCQ_BREAK
    rcq::qp<rcq::state::reset> q(pd, rcq::send_cq(ctx, 16), receives);
#else
    rcq::send_cq sends(ctx, 16);
    rcq::qp<rcq::state::reset> q(pd, sends, receives);
#endif
}

int main() {}
