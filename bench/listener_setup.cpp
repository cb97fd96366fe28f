// listener_setup: the set-up cost of many peers through rcq::listener, and
// the memory rcq adds per connected QP.
//
//   listener_setup [-d dev] [-g gid_index] [N ...]     (default N: 1 8 64)
//
// For each N: N client threads connect at once (each an rcq::connection with
// its own device context, as separate processes would have), and one
// rcq::listener on one rcq::resources accepts them; reported is the time
// from the clients' start until the N-th peer is in RTS with both go-aheads
// swapped, in total and per client.
//
// Memory: every operator new and delete of the listener's thread is counted
// (libibverbs allocates with malloc, so this is rcq's share, with the
// standard library's it uses): the bytes still held per accepted peer while
// the peers are kept, and the peak per handshake in progress; plus the sizes
// of the per-peer objects themselves.
#include <rcq/connection.hpp>
#include <rcq/handshake/tcp.hpp>
#include <rcq/listener.hpp>
#include <rcq/resources.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {

// Counted on the listener's thread only.
thread_local bool counting = false;
thread_local long long live_bytes = 0;
thread_local long long peak_bytes = 0;
thread_local long long allocations = 0;

struct header { // before each block, to know its size at delete
    std::size_t size;
    std::size_t pad;
};

void* counted_new(std::size_t n) {
    auto* h = static_cast<header*>(std::malloc(n + sizeof(header)));
    if (!h) throw std::bad_alloc();
    h->size = n;
    if (counting) {
        live_bytes += static_cast<long long>(n);
        ++allocations;
        if (live_bytes > peak_bytes) peak_bytes = live_bytes;
    }
    return h + 1;
}

void counted_delete(void* p) noexcept {
    if (!p) return;
    auto* h = static_cast<header*>(p) - 1;
    if (counting) live_bytes -= static_cast<long long>(h->size);
    std::free(h);
}

} // namespace

void* operator new(std::size_t n) { return counted_new(n); }
void* operator new[](std::size_t n) { return counted_new(n); }
void operator delete(void* p) noexcept { counted_delete(p); }
void operator delete[](void* p) noexcept { counted_delete(p); }
void operator delete(void* p, std::size_t) noexcept { counted_delete(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_delete(p); }

int main(int argc, char** argv) {
    using namespace std::chrono;
    std::string device;
    std::optional<int> gid_index;
    std::vector<int> counts;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-d" && i + 1 < argc) device = argv[++i];
        else if ((a == "-g" || a == "-x") && i + 1 < argc) gid_index = std::atoi(argv[++i]);
        else counts.push_back(std::atoi(a.c_str()));
    }
    if (counts.empty()) counts = {1, 8, 64};
    const char* ip = std::getenv("RCQ_IP");
    const std::string host = ip ? ip : "127.0.0.1";
    try {
        int most = 0;
        for (int n : counts) most = std::max(most, n);
        rcq::resources_options ro;
        ro.device = device;
        ro.gid_index = gid_index;
        ro.max_qps = static_cast<std::uint32_t>(most);
        ro.srq_depth = 64;
        ro.caps.max_send_wr = 8;
        rcq::resources<rcq::poll::busy, rcq::buffer::owned<1 << 16>> res(ro);
        std::printf("listener_setup on %s: N clients (threads, each with its own device context) at once, "
                    "one listener on one PD/CQ/SRQ\n",
                    rcq::device_name(res.device()).c_str());
        std::printf("sizeof: rcq::peer<tcp_link> %zu B (qp<rts> %zu, tcp_link %zu, two endpoints %zu)\n",
                    sizeof(rcq::listener<decltype(res)>::peer_type), sizeof(rcq::qp<rcq::state::rts>),
                    sizeof(rcq::handshake::tcp_link), 2 * sizeof(rcq::endpoint));
        for (int n : counts) {
            rcq::listener server(res, 0);
            const auto port = server.port();
            std::atomic<int> failed{0};
            std::vector<std::thread> clients;
            std::vector<rcq::listener<decltype(res)>::peer_type> peers;
            peers.reserve(static_cast<std::size_t>(n)); // its own growth is not per peer
            const auto start = steady_clock::now();
            for (int i = 0; i < n; ++i)
                clients.emplace_back([&] {
                    try {
                        rcq::connection_options co;
                        co.device = device;
                        co.gid_index = gid_index;
                        rcq::connection<rcq::poll::busy, rcq::handshake::tcp> c(
                            rcq::handshake::tcp::client(host, port, seconds{60}), co);
                        c.ready();
                    } catch (const std::exception& e) {
                        std::fprintf(stderr, "client: %s\n", e.what());
                        ++failed;
                    }
                });
            counting = true;
            live_bytes = peak_bytes = allocations = 0;
            for (int i = 0; i < n; ++i) {
                auto p = server.accept(seconds{60});
                p.ready();
                peers.push_back(std::move(p));
            }
            const auto took = duration_cast<microseconds>(steady_clock::now() - start).count() / 1000.0;
            const long long held = live_bytes, peak = peak_bytes, count = allocations;
            counting = false;
            for (auto& t : clients) t.join();
            if (failed != 0) {
                std::fprintf(stderr, "%d client(s) failed\n", failed.load());
                return 1;
            }
            std::printf("N=%-3d %8.1f ms to RTS (%6.2f ms per client); rcq heap per peer: %lld B held, "
                        "%lld B peak (all N at once) / N, %lld allocations per peer\n",
                        n, took, took / n, held / n, peak / n, count / n);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "listener_setup: %s\n", e.what());
        return 1;
    }
    return 0;
}
