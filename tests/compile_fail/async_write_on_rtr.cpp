// expect-error: qp_must_be_in_rts_to_post_send<State> \[with State = rcq::state::rtr\]
// An RDMA WRITE is a send-side operation: an async QP in RTR does not have it.
#include <rcq/async/qp.hpp>

#include <boost/asio/detached.hpp>

void use(rcq::async_qp<rcq::state::rtr>& q, const ibv_sge& sge, const rcq::remote_slice& to) {
#ifdef RCQ_BREAK
    q.async_write(sge, to, boost::asio::detached);
#else
    (void)to;
    q.async_recv(sge, boost::asio::detached);
#endif
}

int main() {}
