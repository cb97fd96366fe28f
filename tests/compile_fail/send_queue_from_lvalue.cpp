// expect-error: send_queue_takes_the_qp
// first-error: static assertion failed: rcq::send_queue: send_queue_takes_the_qp: .*std::move\(q\)
// The queue owns the QP it counts for, so that no other handle can move it to
// ERROR or destroy it behind the queue's back.
#include <rcq/send_queue.hpp>

#include <utility>

rcq::send_queue<16> make(rcq::qp<rcq::state::rts>& q) {
#ifdef RCQ_BREAK
    return rcq::send_queue<16>(q);
#else
    return rcq::send_queue<16>(std::move(q));
#endif
}

int main() {}
