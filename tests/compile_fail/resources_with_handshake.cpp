// expect-error: each peer brings its own handshake
#include <rcq/handshake/tcp.hpp>
#include <rcq/poll/blocking.hpp>
#include <rcq/resources.hpp>

// Resources are shared by many peers; a handshake belongs to one of them.
#ifdef RCQ_BREAK
using shared = rcq::resources<rcq::poll::blocking, rcq::handshake::tcp>;
#else
using shared = rcq::resources<rcq::poll::blocking>;
#endif
static_assert(sizeof(shared) > 0);

int main() {}
