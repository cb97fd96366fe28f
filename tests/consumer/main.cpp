// Uses rcq the way an outside project would, and prints what it sees.
#include <rcq/rcq.hpp>

#include <iostream>

int main() {
    static_assert(sizeof(rcq::qp<rcq::state::rts>) == sizeof(ibv_qp*));
    rcq::endpoint e{};
    e.qpn = 42;
    const rcq::endpoint back = rcq::decode(rcq::encode(e));
    std::cout << "consumer: endpoint round trip " << (back == e ? "ok" : "FAILED") << '\n';
    return back == e ? 0 : 1;
}
