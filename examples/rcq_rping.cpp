// rcq_rping: rdma-core's rping protocol, spoken by rcq over the RDMA CM, so
// that rcq and the stock rping can ping each other in either role.
//
//   rcq_rping -s [-a bind_addr] [-p port] [-C count] [-S size] [-v] [-V] [--timeout S] [--narrate]
//   rcq_rping -c -a server_addr [-p port] [-C count] [-S size] [-v] [-V] [--timeout S] [--narrate]
//
// The protocol, as rping runs it over one RC connection made by the CM (no
// private data):
//  1. the client SENDs a 16-byte advertisement {address (64 bits), rkey,
//     length (32 bits each), big-endian} of its "start" buffer, which holds
//     "rdma-ping-<n>: " followed by letters;
//  2. the server RDMA READs that buffer and SENDs a 16-byte go-ahead;
//  3. the client advertises its second ("rdma") buffer the same way;
//  4. the server RDMA WRITEs what it read (up to and including the first NUL)
//     into it and SENDs another go-ahead;
//  5. the client compares the two buffers (-V) and starts the next ping.
// After the last ping the client disconnects; the server ends when the CM
// reports the disconnect. Each side keeps one 16-byte receive posted.
#include <rcq/rcq.hpp>

#include <endian.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t max_size = 64 * 1024; // rping's own limit
constexpr std::size_t min_size = 26;        // "rdma-ping-<INT_MAX>: " and a NUL
// Where things live in the connection's one registered buffer.
constexpr std::size_t recv_at = 0;           // the peer's advertisement or go-ahead
constexpr std::size_t send_at = 64;          // ours
constexpr std::size_t rdma_at = 4096;        // the client's WRITE sink; the server's READ sink
constexpr std::size_t start_at = rdma_at + max_size; // the client's READ source
constexpr std::uint32_t info_size = 16;

using connection = rcq::connection<rcq::handshake::rdma_cm, rcq::buffer::owned<start_at + max_size>>;

struct options {
    bool server = false;
    bool client = false;
    std::string address;
    std::uint16_t port = 7174; // rping's default
    int count = 0;             // 0: forever, like rping
    std::size_t size = 64;
    bool verbose = false;
    bool validate = false;
    std::chrono::seconds timeout{30};
    bool narrate = false;
};

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

long parse_long(std::string_view text, long low, long high, std::string_view what) {
    long v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v < low || v > high)
        throw usage_error(std::string(what) + " '" + std::string(text) + "' is not in " +
                          std::to_string(low) + ".." + std::to_string(high));
    return v;
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) throw usage_error("option " + std::string(a) + " needs a value");
            return argv[++i];
        };
        if (a == "-s") o.server = true;
        else if (a == "-c") o.client = true;
        else if (a == "-a") o.address = value();
        else if (a == "-p") o.port = static_cast<std::uint16_t>(parse_long(value(), 1, 65535, "port"));
        else if (a == "-C") o.count = static_cast<int>(parse_long(value(), 0, 1 << 30, "count"));
        else if (a == "-S") o.size = static_cast<std::size_t>(parse_long(value(), min_size, max_size, "size"));
        else if (a == "-v") o.verbose = true;
        else if (a == "-V") o.validate = true;
        else if (a == "--timeout") o.timeout = std::chrono::seconds(parse_long(value(), 1, 3600, "timeout"));
        else if (a == "--narrate") o.narrate = true;
        else throw usage_error("unknown argument " + std::string(a));
    }
    if (o.server == o.client) throw usage_error("give exactly one of -s and -c");
    if (o.client && o.address.empty()) throw usage_error("the client needs the server's address: -a");
    if (o.server && o.address.empty()) o.address = "0.0.0.0";
    return o;
}

// The 16-byte advertisement of one of our buffers.
void advertise(connection& conn, std::size_t at, std::uint32_t length) {
    const std::uint64_t addr = htobe64(reinterpret_cast<std::uintptr_t>(conn.buffer().data() + at));
    const std::uint32_t rkey = htobe32(conn.buffer_policy().rkey());
    const std::uint32_t len = htobe32(length);
    std::byte* out = conn.buffer().data() + send_at;
    std::memcpy(out, &addr, 8);
    std::memcpy(out + 8, &rkey, 4);
    std::memcpy(out + 12, &len, 4);
}

rcq::remote_slice advertised(connection& conn) {
    std::uint64_t addr = 0;
    std::uint32_t rkey = 0;
    std::uint32_t len = 0;
    const std::byte* in = conn.buffer().data() + recv_at;
    std::memcpy(&addr, in, 8);
    std::memcpy(&rkey, in + 8, 4);
    std::memcpy(&len, in + 12, 4);
    return {be64toh(addr), be32toh(rkey), be32toh(len)};
}

void post_recv(connection& conn) {
    if (int rc = conn.post_recv(recv_at, info_size, 1); rc != 0) rcq::throw_error("ibv_post_recv", {}, rc);
}

void send_info(connection& conn) {
    if (int rc = conn.post_send(send_at, info_size, 2); rc != 0) rcq::throw_error("ibv_post_send", {}, rc);
}

// Waits for the next completion of `opcode`; SEND completions met on the
// way are only counted as done.
ibv_wc expect(connection& conn, ibv_wc_opcode opcode, std::string_view what) {
    for (;;) {
        const ibv_wc wc = conn.wait(what);
        if (wc.opcode == opcode) return wc;
        if (wc.opcode != IBV_WC_SEND)
            rcq::throw_invalid("unexpected completion (opcode " + std::to_string(wc.opcode) + ") while waiting for " +
                               std::string(what));
    }
}

ibv_wc expect_info(connection& conn, std::string_view what) {
    const ibv_wc wc = expect(conn, IBV_WC_RECV, what);
    if (wc.byte_len != info_size)
        rcq::throw_invalid("received " + std::to_string(wc.byte_len) + " bytes while waiting for " +
                               std::string(what) + ", expected " + std::to_string(info_size),
                           "the peer does not speak rping's protocol");
    return wc;
}

// What rping's client puts in its start buffer for ping `n`: the header,
// then letters from 'A' + n % 58 on, cycling through 'A'..'z', and a NUL.
void fill_ping(std::span<std::byte> out, int n) {
    char head[32];
    const int cc = std::snprintf(head, sizeof head, "rdma-ping-%d: ", n);
    unsigned char c = static_cast<unsigned char>(65 + n % 58);
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (i < static_cast<std::size_t>(cc)) {
            out[i] = std::byte(head[i]);
        } else {
            out[i] = std::byte(c);
            c = c >= 122 ? 65 : c + 1;
        }
    }
    out[out.size() - 1] = std::byte{0};
}

std::string text_at(connection& conn, std::size_t at) {
    return {reinterpret_cast<const char*>(conn.buffer().data() + at)};
}

int run_client(const options& o, rcq::connection_options copts) {
    connection conn(rcq::handshake::rdma_cm::client(o.address, o.port, o.timeout,
                                                    rcq::handshake::rdma_cm::private_data::none),
                    copts);
    const auto size = static_cast<std::uint32_t>(o.size);
    post_recv(conn);
    for (int ping = 0; o.count == 0 || ping < o.count; ++ping) {
        auto start = conn.buffer().subspan(start_at, size);
        fill_ping(start, ping);
        advertise(conn, start_at, size);
        send_info(conn);
        expect_info(conn, "the server's go-ahead after its RDMA READ");
        post_recv(conn);

        advertise(conn, rdma_at, size);
        send_info(conn);
        expect_info(conn, "the server's go-ahead after its RDMA WRITE");
        post_recv(conn);

        if (o.validate && std::memcmp(conn.buffer().data() + start_at, conn.buffer().data() + rdma_at, size) != 0)
            rcq::throw_invalid("ping " + std::to_string(ping) + ": data mismatch: the server wrote back \"" +
                               text_at(conn, rdma_at) + "\"");
        if (o.verbose) std::cout << "ping data: " << text_at(conn, rdma_at) << '\n' << std::flush;
    }
    conn.handshake().disconnect();
    return 0;
}

// Server: a completion, or nothing when the client has disconnected.
std::optional<ibv_wc> next_or_disconnect(connection& conn, std::chrono::seconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    ibv_wc wc{};
    for (;;) {
        const int n = ibv_poll_cq(conn.completion_queue().get(), 1, &wc);
        if (n < 0) rcq::throw_error("ibv_poll_cq", {}, -n);
        if (n == 1) {
            if (wc.status != IBV_WC_SUCCESS)
                rcq::throw_invalid(std::string("completion failed: ") + ibv_wc_status_str(wc.status));
            if (wc.opcode == IBV_WC_SEND) continue;
            return wc;
        }
        if (conn.handshake().peer_disconnected()) return std::nullopt;
        if (std::chrono::steady_clock::now() > until)
            rcq::throw_error("the client neither sent nor disconnected within " +
                                 std::to_string(timeout.count()) + " s",
                             "is the client still running?", ETIMEDOUT);
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
}

int run_server(const options& o, rcq::connection_options copts) {
    auto listening = rcq::handshake::rdma_cm::server(o.port, o.timeout, o.address,
                                                     rcq::handshake::rdma_cm::private_data::none);
    std::cout << "rcq_rping: listening on " << o.address << " port " << listening.port() << '\n' << std::flush;
    connection conn(std::move(listening), copts);
    // The client SENDs as soon as it is connected: until this receive is
    // posted, its SEND is refused with RNR NAKs and retried (rnr_retry 7).
    post_recv(conn);
    std::memset(conn.buffer().data() + send_at, 0, info_size); // rping's go-ahead carries zeros
    int pings = 0;
    for (;;) {
        auto first = next_or_disconnect(conn, o.timeout);
        if (!first) break;
        if (first->opcode != IBV_WC_RECV || first->byte_len != info_size)
            rcq::throw_invalid("expected the client's 16-byte advertisement of its start buffer");
        const rcq::remote_slice source = advertised(conn);
        if (source.length == 0 || source.length > max_size)
            rcq::throw_invalid("the client advertised " + std::to_string(source.length) +
                                   " bytes; this server takes 1.." + std::to_string(max_size),
                               "run the client with -S at most " + std::to_string(max_size));
        post_recv(conn);
        const ibv_sge into = rcq::local(conn.buffer_policy(), rdma_at, source.length);
        rcq::read_op read(into, source, 3);
        if (int rc = conn.queue_pair().post_send(read); rc != 0) rcq::throw_error("ibv_post_send(READ)", {}, rc);
        expect(conn, IBV_WC_RDMA_READ, "the RDMA READ of the client's start buffer");
        conn.buffer()[rdma_at + source.length - 1] = std::byte{0};
        if (o.verbose) std::cout << "server ping data: " << text_at(conn, rdma_at) << '\n' << std::flush;
        if (o.validate) {
            std::vector<std::byte> want(source.length);
            fill_ping(want, pings);
            if (std::memcmp(want.data(), conn.buffer().data() + rdma_at, source.length) != 0)
                rcq::throw_invalid("ping " + std::to_string(pings) + ": the client's data is not rping's pattern: \"" +
                                   text_at(conn, rdma_at) + "\"");
        }
        send_info(conn);

        const ibv_wc second = expect_info(conn, "the client's advertisement of its RDMA WRITE sink");
        (void)second;
        const rcq::remote_slice sink = advertised(conn);
        post_recv(conn);
        const auto length = static_cast<std::uint32_t>(text_at(conn, rdma_at).size() + 1);
        if (length > sink.length)
            rcq::throw_invalid("the client's sink of " + std::to_string(sink.length) + " bytes is smaller than the " +
                               std::to_string(length) + " to write back");
        const ibv_sge from = rcq::local(conn.buffer_policy(), rdma_at, length);
        rcq::write_op write(from, rcq::remote_slice{sink.addr, sink.rkey, length}, 4);
        if (int rc = conn.queue_pair().post_send(write); rc != 0) rcq::throw_error("ibv_post_send(WRITE)", {}, rc);
        expect(conn, IBV_WC_RDMA_WRITE, "the RDMA WRITE into the client's sink");
        send_info(conn);
        ++pings;
    }
    std::cout << "rcq_rping: the client disconnected after " << pings << " pings\n";
    if (o.count != 0 && pings != o.count)
        rcq::throw_invalid("the client disconnected after " + std::to_string(pings) + " pings, not the " +
                           std::to_string(o.count) + " asked for with -C");
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        const options o = parse(argc, argv);
        rcq::connection_options copts;
        // rping's server READs from and WRITEs into the client's buffers.
        copts.remote_access = IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;
        copts.completion_timeout = o.timeout;
        copts.narrate = o.narrate ? &std::cout : nullptr;
        return o.server ? run_server(o, copts) : run_client(o, copts);
    } catch (const usage_error& e) {
        std::cerr << "rcq_rping: " << e.what() << "\nusage: rcq_rping -s|-c [-a addr] [-p port] [-C count] "
                     "[-S size] [-v] [-V] [--timeout S] [--narrate]\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "rcq_rping: error: " << e.what() << '\n';
        return 1;
    }
}
