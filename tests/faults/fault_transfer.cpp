// fault_transfer: moves several MiB each way over one rcq::connection and
// checks every byte, for the fault tests (netem loss, duplication and
// reordering on the wire between two VMs, and a peer killed mid-transfer).
//
//   fault_transfer server [-p PORT] [-m MIB] [-c BYTES] [-t SECS] [--retry N] [--die-in PHASE]
//   fault_transfer client HOST [same options]
//
// Phases, each timed and separated by the TCP handshake's go-ahead:
//   send   the client SENDs MIB MiB to the server in -c byte messages (64 KiB)
//   recv   the server SENDs MIB MiB to the client
//   write  the client RDMA WRITEs MIB MiB into the server's buffer
//   read   the client RDMA READs MIB MiB of the server's buffer back
// Each side checks the bytes it received (SEND and WRITE at the server,
// SEND and READ at the client). Up to 16 messages are in flight at once.
// --retry sets the QP's retry_cnt (default: rcq's, 6).
// --die-in PHASE makes this side kill itself (SIGKILL, as a crash would)
// half-way through posting that phase's work: the survivor must report a
// clear error within its completion timeout (-t, per completion; sooner
// through the handshake's liveness signal) and exit.
// Exit status: 0 success, 1 failure, 2 bad command line.
#include <rcq/rcq.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace {

using clock_type = std::chrono::steady_clock;
constexpr std::size_t max_mib = 8;
constexpr std::size_t region = max_mib << 20;        // one direction's bytes
constexpr std::size_t window = 16;                    // messages in flight
using connection = rcq::connection<rcq::buffer::owned<2 * region>>;

struct options {
    bool server = true;
    std::string host;
    std::uint16_t port = 18600;
    std::size_t mib = 4;
    int timeout_s = 30;
    std::string die_in;
    std::uint32_t chunk = 64 * 1024;
    int retry = rcq::rts_attrs{}.retry_cnt;
};

std::byte pattern(std::size_t i, unsigned seed) {
    return std::byte(static_cast<unsigned char>(seed * 31 + i * 7 + (i >> 11)));
}

void fill(std::span<std::byte> out, unsigned seed) {
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = pattern(i, seed);
}

void check(std::span<const std::byte> got, unsigned seed, const char* what) {
    for (std::size_t i = 0; i < got.size(); ++i)
        if (got[i] != pattern(i, seed))
            rcq::throw_invalid(std::string(what) + ": byte " + std::to_string(i) + " is wrong");
}

struct transfer {
    connection& conn;
    const options& opt;
    std::size_t bytes() const { return opt.mib << 20; }
    std::uint32_t chunk() const { return opt.chunk; }
    std::size_t chunks() const { return bytes() / chunk(); }
    std::span<std::byte> out() { return conn.buffer().first(region); }
    std::span<std::byte> in() { return conn.buffer().subspan(region, region); }

    void maybe_die(std::string_view phase, std::size_t posted) {
        if (opt.die_in == phase && posted == chunks() / 2) {
            std::printf("dying in phase %s after %zu of %zu messages\n", opt.die_in.c_str(), posted,
                        chunks());
            std::fflush(stdout);
            std::raise(SIGKILL);
        }
    }

    // Posts `post(k)` for every message, keeping `window` in flight; each
    // completion is waited for with the connection's completion timeout.
    template <class Post>
    void stream(std::string_view phase, Post post) {
        std::size_t posted = 0, done = 0;
        while (done < chunks()) {
            while (posted < chunks() && posted - done < window) {
                maybe_die(phase, posted);
                if (int rc = post(posted); rc != 0) rcq::throw_error("ibv_post_send", {}, rc);
                ++posted;
            }
            conn.wait(std::string(phase) + " message " + std::to_string(done));
            ++done;
        }
    }

    void receive(std::string_view phase) {
        for (std::size_t k = 0; k < chunks(); ++k) {
            const ibv_wc wc = conn.wait(std::string(phase) + " message " + std::to_string(k));
            if (wc.byte_len != chunk())
                rcq::throw_invalid(std::string(phase) + ": a message of " + std::to_string(wc.byte_len) +
                                   " bytes");
            if (k + 1 == chunks() / 2) maybe_die(phase, chunks() / 2);
        }
    }

    void post_receives() {
        for (std::size_t k = 0; k < chunks(); ++k)
            if (int rc = conn.post_recv(region + k * chunk(), chunk(), k); rc != 0)
                rcq::throw_error("ibv_post_recv", {}, rc);
    }

    template <class Body>
    void timed(const char* phase, Body body) {
        const auto start = clock_type::now();
        body();
        conn.ready();
        const double s = std::chrono::duration<double>(clock_type::now() - start).count();
        std::printf("phase %-5s %zu MiB in %.2f s (%.2f MiB/s), every byte checked\n", phase, opt.mib, s,
                    static_cast<double>(opt.mib) / s);
        std::fflush(stdout);
    }

    void run() {
        const rcq::remote_region peer = rcq::remote_region::of(conn.remote());
        if (opt.server) post_receives(); // for the client's SENDs
        conn.ready();
        const auto start = clock_type::now();

        timed("send", [&] {
            if (opt.server) {
                receive("send");
                check(in().first(bytes()), 1, "SEND from the client");
            } else {
                fill(out().first(bytes()), 1);
                stream("send", [&](std::size_t k) { return conn.post_send(k * chunk(), chunk(), k); });
            }
        });
        timed("recv", [&] {
            if (opt.server) {
                fill(out().first(bytes()), 2);
                conn.ready(); // the client's receives are posted
                stream("recv", [&](std::size_t k) { return conn.post_send(k * chunk(), chunk(), k); });
            } else {
                post_receives();
                conn.ready();
                receive("recv");
                check(in().first(bytes()), 2, "SEND from the server");
            }
        });
        timed("write", [&] {
            if (opt.server) {
                conn.ready(); // the client has written
                check(in().first(bytes()), 3, "RDMA WRITE from the client");
            } else {
                fill(out().first(bytes()), 3);
                stream("write", [&](std::size_t k) {
                    const ibv_sge from = rcq::local(conn.buffer_policy(), k * chunk(), chunk());
                    rcq::write_op w(from, peer.slice(region + k * chunk(), chunk()), k);
                    return conn.queue_pair().post_send(w);
                });
                conn.ready();
            }
        });
        timed("read", [&] {
            if (opt.server) {
                fill(out().first(bytes()), 4);
                conn.ready(); // the client reads now
            } else {
                conn.ready();
                stream("read", [&](std::size_t k) {
                    const ibv_sge into = rcq::local(conn.buffer_policy(), region + k * chunk(), chunk());
                    rcq::read_op r(into, peer.slice(k * chunk(), chunk()), k);
                    return conn.queue_pair().post_send(r);
                });
                check(in().first(bytes()), 4, "RDMA READ from the server");
            }
        });
        const double s = std::chrono::duration<double>(clock_type::now() - start).count();
        std::printf("total %zu MiB each way: %.2f s (%u KiB messages, retry_cnt %d)\n", 2 * opt.mib, s,
                    opt.chunk / 1024, opt.retry);
    }
};

options parse(int argc, char** argv) {
    options o;
    if (argc < 2) throw std::invalid_argument("say server or client");
    const std::string_view role = argv[1];
    if (role != "server" && role != "client") throw std::invalid_argument("say server or client");
    o.server = role == "server";
    int i = 2;
    if (!o.server) {
        if (argc < 3) throw std::invalid_argument("the client needs the server's address");
        o.host = argv[i++];
    }
    for (; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (i + 1 >= argc) throw std::invalid_argument(std::string(arg) + " needs a value");
        const std::string value = argv[++i];
        if (arg == "-p") o.port = static_cast<std::uint16_t>(std::stoul(value));
        else if (arg == "-m") o.mib = std::stoul(value);
        else if (arg == "-t") o.timeout_s = std::stoi(value);
        else if (arg == "--die-in") o.die_in = value;
        else if (arg == "-c") o.chunk = static_cast<std::uint32_t>(std::stoul(value));
        else if (arg == "--retry") o.retry = std::stoi(value);
        else throw std::invalid_argument("unknown option " + std::string(arg));
    }
    if (o.mib == 0 || o.mib > max_mib) throw std::invalid_argument("-m is 1.." + std::to_string(max_mib));
    if (o.chunk < 4096 || o.chunk > (1u << 20) || (o.chunk & (o.chunk - 1)) != 0)
        throw std::invalid_argument("-c is a power of two from 4096 to 1048576");
    if (o.retry < 0 || o.retry > 7) throw std::invalid_argument("--retry is 0..7");
    return o;
}

} // namespace

int main(int argc, char** argv) {
    options opt;
    try {
        opt = parse(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fault_transfer: %s\n", e.what());
        return 2;
    }
    const char* me = opt.server ? "server" : "client";
    try {
        rcq::connection_options c;
        if (const char* dev = std::getenv("RCQ_DEVICE")) c.device = dev;
        c.caps.max_send_wr = 2 * window;
        c.caps.max_recv_wr = static_cast<std::uint32_t>(region / opt.chunk);
        c.cq_depth = static_cast<int>(region / opt.chunk + 2 * window);
        c.retry_cnt = static_cast<std::uint8_t>(opt.retry);
        c.remote_access = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
        c.completion_timeout = std::chrono::seconds(opt.timeout_s);
        // The TCP handshake's budget covers its go-aheads between phases too,
        // so it spans the whole run; -t bounds each completion.
        const auto budget = std::chrono::seconds(900);
        auto handshake = opt.server ? rcq::handshake::tcp::server(opt.port, budget)
                                    : rcq::handshake::tcp::client(opt.host, opt.port, budget);
        handshake.allow_memory_without_secret(); // two test VMs on their own wire
        connection conn(std::move(handshake), c);
        transfer{conn, opt}.run();
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fault_transfer %s: error: %s\n", me, e.what());
        return 1;
    }
}
