// expect-error: qp_must_be_in_rts_to_post_send.*rcq::state::rtr
#include <rcq/qp.hpp>

int post(rcq::qp<rcq::state::rtr>& early, rcq::qp<rcq::state::rts>& ready, ibv_send_wr& wr) {
#ifdef RCQ_BREAK
    (void)ready;
    return early.post_send(wr);
#else
    (void)early;
    return ready.post_send(wr);
#endif
}

int main() {}
