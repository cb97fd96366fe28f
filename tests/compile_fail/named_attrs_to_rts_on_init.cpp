// expect-error: qp_must_be_in_rtr_to_move_to_rts
// first-error: static assertion failed: rcq::qp::to_rts: qp_must_be_in_rtr_to_move_to_rts: .*call to_rtr
#include <rcq/qp.hpp>

#include <utility>

rcq::qp<rcq::state::rts> skip_rtr(rcq::qp<rcq::state::init> q, const rcq::rtr_attrs& peer,
                                  const rcq::rts_attrs& attrs) {
#ifdef RCQ_BREAK
    (void)peer;
    return std::move(q).to_rts(attrs);
#else
    return std::move(q).to_rtr(peer).to_rts(attrs);
#endif
}

int main() {}
