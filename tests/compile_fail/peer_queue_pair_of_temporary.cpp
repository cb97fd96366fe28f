// expect-error: use of deleted function .*rcq::peer<.*>::queue_pair\(\) &&
// The temporary peer, and its QP with it, is destroyed at the end of the
// statement: the reference to the QP would dangle.
#include <rcq/handshake/tcp.hpp>
#include <rcq/resources.hpp>

void use(const rcq::resources<>& res) {
#ifdef RCQ_BREAK
    rcq::qp<rcq::state::rts>& q = res.connect(rcq::handshake::tcp::client("10.0.0.1", 18515)).queue_pair();
#else
    auto p = res.connect(rcq::handshake::tcp::client("10.0.0.1", 18515));
    rcq::qp<rcq::state::rts>& q = p.queue_pair();
#endif
    (void)q;
}

int main() {}
