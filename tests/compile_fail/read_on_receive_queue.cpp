// expect-error: srq_takes_only_receive_requests
// A READ is a send-queue request: a receive-only path (a shared receive
// queue) does not take it.
#include <rcq/srq.hpp>
#include <rcq/wr.hpp>

int post(rcq::srq& shared, const ibv_sge& sge, const rcq::remote_slice& from) {
#ifdef RCQ_BREAK
    rcq::read_op read(sge, from, 1);
    return shared.post_recv(read);
#else
    (void)from;
    rcq::recv_wr receive(sge, 1);
    return shared.post_recv(receive);
#endif
}

int main() {}
