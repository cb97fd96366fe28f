// expect-error: ignoring return value
// A transition's result is the only handle to the QP: dropping it destroys
// the QP, so it is [[nodiscard]].
#include <rcq/qp.hpp>

#include <utility>

void drop(rcq::qp<rcq::state::reset> q) {
#ifdef RCQ_BREAK
    std::move(q).to_init();
#else
    auto kept = std::move(q).to_init();
    (void)kept;
#endif
}

int main() {}
