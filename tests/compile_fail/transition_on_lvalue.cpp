// expect-error: a QP transition consumes its handle; call it on an rvalue
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
