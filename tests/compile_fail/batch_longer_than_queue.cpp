// expect-error: batch_must_fit_in_the_send_queue
#include <rcq/send_queue.hpp>

int post(rcq::send_queue<8, 8>& sq) {
#ifdef RCQ_BREAK
    rcq::wr_chain<16> chain;
#else
    rcq::wr_chain<8> chain;
#endif
    return sq.post(chain);
}

int main() {}
