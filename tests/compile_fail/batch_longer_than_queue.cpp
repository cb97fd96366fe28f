// expect-error: batch_must_fit_in_the_send_queue
// A chain must fit beside the longest unsignaled run (Every - 1 requests):
// 16 + 7 > 16 here, 8 + 7 <= 16 in the twin.
#include <rcq/send_queue.hpp>

int post(rcq::send_queue<16, 8>& sq) {
#ifdef RCQ_BREAK
    rcq::wr_chain<16> chain;
#else
    rcq::wr_chain<8> chain;
#endif
    return sq.post(chain);
}

int main() {}
