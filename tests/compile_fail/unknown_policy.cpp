// expect-error: this type is not an rcq policy
#include <rcq/connection.hpp>

#include <string>

#ifdef RCQ_BREAK
using conn = rcq::connection<rcq::poll::busy, std::string>;
#else
using conn = rcq::connection<rcq::poll::busy>;
#endif
static_assert(sizeof(conn) > 0);

int main() {}
