// expect-error: transition_needs_an_rvalue
// first-error: static assertion failed: rcq::qp: a transition consumes its handle \(transition_needs_an_rvalue\); call it on an rvalue
#include <rcq/qp.hpp>

#include <utility>

rcq::qp<rcq::state::init> keep_using(rcq::qp<rcq::state::reset> q) {
#ifdef RCQ_BREAK
    q.to_init();
    return std::move(q).to_init();
#else
    return std::move(q).to_init();
#endif
}

int main() {}
