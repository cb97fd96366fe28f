// expect-error: use of deleted function .*rcq::resources<.*>::connect\(.*\) const ?&&
// The peer's QP would outlive temporary resources (destroyed at the end of
// the statement, PD and CQ with them).
#include <rcq/handshake/tcp.hpp>
#include <rcq/resources.hpp>

rcq::peer<rcq::handshake::tcp> join(const rcq::resources<>& named) {
#ifdef RCQ_BREAK
    (void)named;
    return rcq::resources<>().connect(rcq::handshake::tcp::client("10.0.0.1", 18515));
#else
    return named.connect(rcq::handshake::tcp::client("10.0.0.1", 18515));
#endif
}

int main() {}
