// expect-error: qp_must_be_in_rts_to_post_send<State> \[with State = rcq::state::init\]
// An async QP keeps the typestate: only one in RTS has the send-side
// operations (here async_send); async_recv exists from INIT on.
#include <rcq/async/qp.hpp>

#include <boost/asio/detached.hpp>

void use(rcq::async_qp<rcq::state::init>& q, const ibv_sge& sge) {
#ifdef RCQ_BREAK
    q.async_send(sge, boost::asio::detached);
#else
    q.async_recv(sge, boost::asio::detached);
#endif
}

int main() {}
