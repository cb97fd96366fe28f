// expect-error: two policies of the same category were given
#include <rcq/connection.hpp>
#include <rcq/poll/blocking.hpp>

#ifdef RCQ_BREAK
using conn = rcq::connection<rcq::poll::busy, rcq::buffer::owned<>, rcq::poll::blocking>;
#else
using conn = rcq::connection<rcq::poll::busy, rcq::buffer::owned<>>;
#endif
static_assert(sizeof(conn) > 0);

int main() {}
