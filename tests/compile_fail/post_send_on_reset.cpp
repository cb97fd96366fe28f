// expect-error: qp_must_be_in_rts_to_post_send.*rcq::state::reset
#include <rcq/qp.hpp>

int post(rcq::qp<rcq::state::reset>& fresh, rcq::qp<rcq::state::rts>& ready, ibv_send_wr& wr) {
#ifdef RCQ_BREAK
    (void)ready;
    return fresh.post_send(wr);
#else
    (void)fresh;
    return ready.post_send(wr);
#endif
}

int main() {}
