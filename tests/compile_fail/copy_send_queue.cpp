// expect-error: use of deleted function .*rcq::send_queue<16>::send_queue\(const rcq::send_queue<16>&\)
// Two queues counting one QP would each think the queue half empty.
#include <rcq/send_queue.hpp>

#include <utility>

rcq::send_queue<16> pass(rcq::send_queue<16>& sq) {
#ifdef RCQ_BREAK
    rcq::send_queue<16> copy(sq);
#else
    rcq::send_queue<16> copy(std::move(sq));
#endif
    return copy;
}

int main() {}
