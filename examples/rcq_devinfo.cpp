// rcq_devinfo: the RDMA devices, their ports and every GID, marking the GID
// that rcq chooses when none is given.
//
//   rcq_devinfo [device]
#include <rcq/device.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/gid.hpp>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
    try {
        if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
            std::cerr << "usage: rcq_devinfo [device]\n";
            return argc == 2 && std::string(argv[1]) == "-h" ? 0 : 2;
        }
        const std::string only = argc == 2 ? argv[1] : "";
        rcq::device_list list;
        if (list.empty()) {
            std::cout << "no RDMA devices found\n";
            return 1;
        }
        if (!only.empty()) (void)list.find(only); // a clear error for an unknown name
        for (ibv_device* dev : list.devices()) {
            const std::string name = ibv_get_device_name(dev);
            if (!only.empty() && name != only) continue;
            rcq::context ctx = rcq::context::open(name);
            const ibv_device_attr attr = ctx.attributes();
            std::cout << name << ": " << int(attr.phys_port_cnt) << " port(s), max_qp_wr "
                      << attr.max_qp_wr << ", max_cqe " << attr.max_cqe << '\n';
            for (std::uint8_t p = 1; p <= attr.phys_port_cnt; ++p) {
                const ibv_port_attr port = ctx.port(p);
                std::cout << "  port " << int(p) << ": " << rcq::port_state_name(port.state)
                          << ", active MTU " << rcq::mtu_bytes(port.active_mtu) << ", LID "
                          << port.lid << '\n';
                const auto table = rcq::gid_table(ctx, p);
                const auto chosen = rcq::preferred_gid(table);
                for (const rcq::gid_entry& g : table) {
                    const bool mark = chosen && chosen->index == g.index;
                    std::cout << (mark ? "  * " : "    ") << "GID " << g.index << ": "
                              << g.address() << "  " << g.kind();
                    if (!g.netdev().empty()) std::cout << "  " << g.netdev();
                    std::cout << '\n';
                }
                if (chosen)
                    std::cout << "  (* the GID rcq uses when none is given: index "
                              << chosen->index << ")\n";
                else
                    std::cout << "  (no RoCE v2 GID on this port)\n";
            }
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "rcq_devinfo: error: " << e.what() << '\n';
        return 1;
    }
}
