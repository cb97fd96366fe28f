// expect-error: qp_must_be_in_rts_to_post_send<State> \[with State = rcq::state::error\]
// A QP moved to ERROR only flushes: posting on it is refused.
#include <rcq/qp.hpp>

#include <utility>

int post(rcq::qp<rcq::state::rts> q, ibv_send_wr& wr) {
#ifdef RCQ_BREAK
    auto failed = std::move(q).to_error();
    return failed.post_send(wr);
#else
    return q.post_send(wr);
#endif
}

int main() {}
