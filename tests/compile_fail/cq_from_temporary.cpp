// expect-error: use of deleted function .*rcq::cq::operator ibv_cq\*\(\) &&
#include <rcq/cq.hpp>

ibv_cq* take(rcq::context& ctx, rcq::cq& named) {
#ifdef RCQ_BREAK
    (void)named;
    ibv_cq* c = rcq::cq(ctx, 16);
#else
    (void)ctx;
    ibv_cq* c = named;
#endif
    return c;
}

int main() {}
