// The use-after-move check's control: a QP handle used after a transition
// consumed it. clang-tidy's bugprone-use-after-move must report the marked
// line, or the check that guards examples, tests and benchmarks proves nothing.
#include <rcq/qp.hpp>

#include <utility>

int keep_using(rcq::qp<rcq::state::reset> q) {
    auto next = std::move(q).to_init();
    (void)next;
    return q.get() == nullptr ? 0 : 1; // rcq-lint-control: use after move
}
