// expect-error: signal at least once per Depth sends \(1 <= Every <= Depth\)
#include <rcq/send_queue.hpp>

#ifdef RCQ_BREAK
using queue = rcq::send_queue<16, 17>;
#else
using queue = rcq::send_queue<16, 16>;
#endif
static_assert(queue::every <= queue::depth);

int main() {}
