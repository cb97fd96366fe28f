// expect-error: qp_must_be_in_init_to_move_to_rtr
// first-error: static assertion failed: rcq::qp::to_rtr: qp_must_be_in_init_to_move_to_rtr: .*call to_init
#include <rcq/qp.hpp>

#include <utility>

rcq::qp<rcq::state::rtr> skip_init(rcq::qp<rcq::state::reset> q) {
#ifdef RCQ_BREAK
    return std::move(q).to_rtr({});
#else
    return std::move(q).to_init().to_rtr({});
#endif
}

int main() {}
