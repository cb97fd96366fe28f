// expect-error: the polling policy does not satisfy rcq::poll_policy
// A type tagged as a polling policy must still do what the category needs.
#include <rcq/connection.hpp>

struct my_poll {
    using rcq_category = rcq::category::poll;
    explicit my_poll(ibv_context*) {}
    rcq::cq make_cq(ibv_context* ctx, int depth) { return rcq::cq(ctx, depth); }
#ifndef RCQ_BREAK
    int wait(const rcq::cq& c, std::span<ibv_wc> out, const rcq::deadline&) noexcept {
        return c.poll(out);
    }
#endif
};

using conn = rcq::connection<my_poll>;
static_assert(sizeof(conn) > 0);

int main() {}
