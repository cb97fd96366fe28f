// expect-error: the handshake policy does not satisfy rcq::handshake_policy
// A type tagged as a handshake policy must still do what the category needs.
#include <rcq/connection.hpp>

struct my_handshake {
    using rcq_category = rcq::category::handshake;
    rcq::endpoint exchange(const rcq::endpoint& local) { return local; }
#ifndef RCQ_BREAK
    void barrier() {}
#endif
};

using conn = rcq::connection<my_handshake>;
static_assert(sizeof(conn) > 0);

int main() {}
