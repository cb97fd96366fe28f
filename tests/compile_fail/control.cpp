// expect-error: rcq_compile_fail_control
// The control case: proves that the harness sees a failed compilation and
// matches its diagnostic, so that the other cases cannot pass by accident.
#include <rcq/qp.hpp>

#ifdef RCQ_BREAK
static_assert(sizeof(rcq::qp<rcq::state::rts>) == 0, "rcq_compile_fail_control");
#endif

int main() {}
