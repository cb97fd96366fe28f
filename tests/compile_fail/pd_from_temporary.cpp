// expect-error: use of deleted function .*rcq::pd::operator ibv_pd\*\(\) &&
// The temporary PD is deallocated at the end of the statement: the raw
// pointer taken from it would dangle.
#include <rcq/pd.hpp>

ibv_pd* take(rcq::context& ctx, rcq::pd& named) {
#ifdef RCQ_BREAK
    (void)named;
    ibv_pd* p = rcq::pd(ctx);
#else
    (void)ctx;
    ibv_pd* p = named;
#endif
    return p;
}

int main() {}
