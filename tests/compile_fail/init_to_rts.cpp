// expect-error: qp_must_be_in_rtr_to_move_to_rts
// first-error: static assertion failed: rcq::qp::to_rts: qp_must_be_in_rtr_to_move_to_rts: .*call to_rtr
#include <rcq/qp.hpp>

#include <utility>

rcq::qp<rcq::state::rts> skip_rtr(rcq::qp<rcq::state::init> q) {
#ifdef RCQ_BREAK
    return std::move(q).to_rts({});
#else
    return std::move(q).to_rtr({}).to_rts({});
#endif
}

int main() {}
