// expect-error: qp_must_be_in_init_rtr_or_rts_to_post_recv.*rcq::state::reset
#include <rcq/qp.hpp>

int post(rcq::qp<rcq::state::reset>& fresh, rcq::qp<rcq::state::init>& initialized,
         ibv_recv_wr& wr) {
#ifdef RCQ_BREAK
    (void)initialized;
    return fresh.post_recv(wr);
#else
    (void)fresh;
    return initialized.post_recv(wr);
#endif
}

int main() {}
