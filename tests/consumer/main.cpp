// Uses rcq the way an outside project would, and prints what it sees. Every
// way of building it (find_package, add_subdirectory, make + pkg-config)
// must print the same lines: run.sh compares them.
#include <rcq/rcq.hpp>

#include <array>
#include <cstddef>
#include <iostream>
#include <string_view>

int main(int argc, char** argv) {
    static_assert(sizeof(rcq::qp<rcq::state::rts>) == sizeof(ibv_qp*));
    rcq::endpoint e{};
    e.qpn = 42;
    const rcq::endpoint back = rcq::decode(rcq::encode(e));
    std::cout << "consumer: endpoint round trip " << (back == e ? "ok" : "FAILED") << '\n';
    bool ok = back == e;

    // Authentication as the package was built: with libsodium, a tag must
    // verify (and the build must link libsodium).
    std::cout << "consumer: authentication " << (rcq::authentication_available ? "available" : "not built")
              << '\n';
    if constexpr (rcq::authentication_available) {
        std::array<std::byte, 32> bytes{};
        bytes.fill(std::byte{7});
        const auto secret = rcq::shared_secret::from_bytes(bytes);
        const bool verified = secret.verify(secret.tag({"consumer"}), {"consumer"});
        std::cout << "consumer: tag round trip " << (verified ? "ok" : "FAILED") << '\n';
        ok = ok && verified;
    }

    // The RDMA CM handshake calls librdmacm: linking this proves the flags
    // bring it. Run only when asked (it needs a server and a device).
    if (argc == 3 && std::string_view(argv[1]) == "--rdma-cm") {
        rcq::connection<rcq::handshake::rdma_cm> conn(rcq::handshake::rdma_cm::client(argv[2], 18515));
        conn.ready();
    }
    return ok ? 0 : 1;
}
