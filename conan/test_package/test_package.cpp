// Compiles against rcq's public headers and runs without an RDMA device.
#include <rcq/rcq.hpp>

#include <iostream>

int main() {
    static_assert(sizeof(rcq::qp<rcq::state::rts>) == sizeof(ibv_qp*));
    rcq::endpoint e{};
    e.qpn = 0x1234;
    e.psn = 0xabcdef;
    const bool ok = rcq::from_text(rcq::to_text(e)) == e;
    std::cout << "rcq test_package: " << rcq::to_text(e) << (ok ? " (ok)" : " (MISMATCH)") << '\n';
    return ok ? 0 : 1;
}
