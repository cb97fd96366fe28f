// expect-error: qp_must_be_in_init_to_move_to_rtr
// first-error: static assertion failed: rcq::qp::to_rtr: qp_must_be_in_init_to_move_to_rtr: .*call to_init
// The README's own style, a named argument on an rvalue, out of order: the
// diagnostic names the state rule, not the rvalue rule.
#include <rcq/qp.hpp>

#include <utility>

rcq::qp<rcq::state::rtr> skip_init(rcq::qp<rcq::state::reset> q, const rcq::rtr_attrs& attrs) {
#ifdef RCQ_BREAK
    return std::move(q).to_rtr(attrs);
#else
    return std::move(q).to_init().to_rtr(attrs);
#endif
}

int main() {}
