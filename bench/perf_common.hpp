// bench/perf_common.hpp - what rcq_lat and rcq_bw share: the command line
// (perftest's flags where they mean the same), the connection, turning the
// run-time signaling interval into rcq::send_queue's compile-time one, and
// perftest-style reports.
#pragma once

#include <rcq/connection.hpp>
#include <rcq/handshake/rdma_cm.hpp>
#include <rcq/send_queue.hpp>
#include <rcq/work_completion.hpp>
#include <rcq/wr.hpp>

#include <infiniband/verbs.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace rcq_perf {

using clock = std::chrono::steady_clock;

/// Timestamps for the latency loop. Like perftest, the loop reads the CPU's
/// cycle counter (a few ns; clock_gettime costs about 0.1 us in a TCG VM,
/// which would land in every round trip). The ticks are turned into time
/// afterwards with the rate seen over the whole run against steady_clock.
class stopwatch {
public:
    static std::uint64_t ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
        return __builtin_ia32_rdtsc();
#else
        return static_cast<std::uint64_t>(clock::now().time_since_epoch().count());
#endif
    }

    stopwatch() noexcept : ticks0_(ticks()), time0_(clock::now()) {}

    /// Microseconds per tick, measured from construction until now.
    double us_per_tick() const noexcept {
        const std::uint64_t t = ticks();
        const double us = std::chrono::duration<double, std::micro>(clock::now() - time0_).count();
        return t > ticks0_ ? us / static_cast<double>(t - ticks0_) : 0;
    }

private:
    std::uint64_t ticks0_;
    clock::time_point time0_;
};

/// The largest message; the buffer holds one outgoing and one incoming.
inline constexpr std::size_t max_message = 1 << 20;
using buffer = rcq::buffer::owned<2 * max_message>;
using connection = rcq::connection<buffer>;
/// rcq_lat --cm: the same connection set up through the RDMA CM.
using cm_connection = rcq::connection<buffer, rcq::handshake::rdma_cm>;
/// Where incoming messages land in the buffer.
inline constexpr std::size_t incoming_offset = max_message;

/// Send queue depth (perftest's default tx depth) and receive queue depth.
inline constexpr std::size_t sq_depth = 128;
inline constexpr std::uint32_t rq_depth = 512;

/// The signaling intervals (-Q) and post-list lengths (-l) on offer: rcq's
/// send_queue and wr_chain take them as template arguments.
inline constexpr std::array<std::size_t, 9> signal_intervals{1, 2, 4, 8, 16, 32, 64, 100, 128};
inline constexpr std::array<std::size_t, 8> post_lists{1, 2, 4, 8, 16, 32, 64, 128};

struct options {
    std::string program;
    std::string host; // empty: the server
    std::string device;
    std::optional<int> gid_index;
    std::uint16_t port = 18515;
    std::size_t size = 2;
    std::uint64_t iters = 1000;
    std::size_t cq_mod = 1;
    std::size_t post_list = 1;
    std::uint32_t inline_size = 0;
    std::string op = "send"; // rcq_lat: send, write or async (SEND awaited by a coroutine);
                             // rcq_bw: write (the default there), or send with -q
    std::uint32_t qps = 0;   // rcq_bw -q: QPs on one rcq::resources (0: one rcq::connection)
    bool check = false;      // rcq_bw --check: verify the bytes that arrived
    bool async = false;      // rcq_bw --async: WRITEs awaited by coroutines (rcq/async)
    std::chrono::seconds timeout{60};
    bool cm = false; // rcq_lat --cm: connect through the RDMA CM, not TCP

    bool is_client() const noexcept { return !host.empty(); }
};

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

template <class Int>
Int number(std::string_view text, Int low, Int high, std::string_view what) {
    long long value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || std::cmp_less(value, low) ||
        std::cmp_greater(value, high))
        throw usage_error(std::string(what) + " '" + std::string(text) + "' is not a number in " +
                          std::to_string(low) + ".." + std::to_string(high));
    return static_cast<Int>(value);
}

template <std::size_t N>
std::string list(const std::array<std::size_t, N>& values) {
    std::string s;
    for (std::size_t v : values) s += (s.empty() ? "" : ", ") + std::to_string(v);
    return s;
}

/// Parses argv over `defaults`. `with_op` accepts --op and --cm (rcq_lat),
/// `with_post_list` -l, -q, --op, --check and --async (rcq_bw).
inline options parse(int argc, char** argv, options o, bool with_op, bool with_post_list) {
    o.program = argv[0];
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) throw usage_error("option " + std::string(arg) + " needs a value");
            return argv[++i];
        };
        if (arg == "-h" || arg == "--help") throw usage_error("");
        else if (arg == "-d") o.device = value();
        else if (arg == "-x") o.gid_index = number<int>(value(), 0, 255, "GID index");
        else if (arg == "-p") o.port = number<std::uint16_t>(value(), 1, 65535, "port");
        else if (arg == "-s") o.size = number<std::size_t>(value(), 1, max_message, "size");
        else if (arg == "-n") o.iters = number<std::uint64_t>(value(), 5, 100'000'000, "iterations");
        else if (arg == "-Q") o.cq_mod = number<std::size_t>(value(), 1, sq_depth, "-Q");
        else if (arg == "-I") o.inline_size = number<std::uint32_t>(value(), 0, 4096, "inline size");
        else if (arg == "-t") o.timeout = std::chrono::seconds(number<int>(value(), 1, 3600, "timeout"));
        else if (with_post_list && arg == "--check") o.check = true;
        else if (with_post_list && arg == "--async") o.async = true;
        else if (with_post_list && arg == "-l")
            o.post_list = number<std::size_t>(value(), 1, sq_depth, "post list");
        else if (with_post_list && arg == "-q") o.qps = number<std::uint32_t>(value(), 1, 256, "QPs");
        else if (with_op && arg == "--cm") o.cm = true;
        else if ((with_op || with_post_list) && arg == "--op") {
            o.op = value();
            if (o.op != "send" && o.op != "write" && o.op != "async")
                throw usage_error("--op is send, write or async");
        } else if (arg.size() > 1 && arg[0] == '-') throw usage_error("unknown option " + std::string(arg));
        else if (o.host.empty()) o.host = arg;
        else throw usage_error("unexpected argument '" + std::string(arg) + "'");
    }
    if (std::find(signal_intervals.begin(), signal_intervals.end(), o.cq_mod) == signal_intervals.end())
        throw usage_error("-Q must be one of " + list(signal_intervals));
    if (std::find(post_lists.begin(), post_lists.end(), o.post_list) == post_lists.end())
        throw usage_error("-l must be one of " + list(post_lists));
    return o;
}

/// Calls `f(std::integral_constant<std::size_t, V>{})` for the V in `values`
/// that equals `v`: a run-time choice made into a template argument.
template <const auto& Values, class F>
void with_constant(std::size_t v, F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        (void)((v == Values[I] ? (f(std::integral_constant<std::size_t, Values[I]>{}), true) : false) ||
               ...);
    }(std::make_index_sequence<Values.size()>{});
}

inline rcq::handshake::rdma_cm cm_handshake(const options& o) {
    const auto budget = std::chrono::duration_cast<std::chrono::milliseconds>(o.timeout);
    return o.is_client() ? rcq::handshake::rdma_cm::client(o.host, o.port, budget)
                         : rcq::handshake::rdma_cm::server(o.port, budget);
}

inline rcq::handshake::tcp handshake(const options& o) {
    const auto budget = std::chrono::duration_cast<std::chrono::milliseconds>(o.timeout);
    auto h = o.is_client() ? rcq::handshake::tcp::client(o.host, o.port, budget)
                           : rcq::handshake::tcp::server(o.port, budget);
    // The WRITE benchmarks grant remote write; like perftest, they are meant
    // for a trusted test network, so the token goes unauthenticated.
    h.allow_memory_without_secret();
    return h;
}

/// A connection whose buffer the peer may write into when `remote_write`
/// (the connection registers its buffer with that access and sends the token).
inline rcq::connection_options connection_options(const options& o, bool remote_write) {
    rcq::connection_options c;
    c.device = o.device;
    c.gid_index = o.gid_index;
    c.caps.max_send_wr = 2 * sq_depth; // room for rcq_bw's send_queue; see there
    c.caps.max_recv_wr = rq_depth;
    c.caps.max_inline_data = o.inline_size;
    c.cq_depth = static_cast<int>(2 * sq_depth + rq_depth); // both queues, full
    c.remote_access = remote_write ? IBV_ACCESS_REMOTE_WRITE : 0;
    return c;
}

/// The error for a wait that saw no progress for -t seconds.
[[noreturn]] inline void no_progress(const std::string& what, std::chrono::seconds timeout) {
    rcq::throw_error("nothing for " + std::to_string(timeout.count()) + " s while waiting for " + what,
                     "is the peer still running? -t bounds each wait, not the run", ETIMEDOUT);
}

/// Polls `cq` until `done()` holds, handing each completion (already
/// checked for success) to `on`. Throws when no completion arrives for
/// `timeout` (-t): each completion restarts the clock, so a long run that
/// makes progress is never cut short.
template <class Done, class On>
void poll_until(const rcq::cq& cq, std::chrono::seconds timeout, const char* what, Done done, On on) {
    std::array<ibv_wc, 16> wcs;
    rcq::deadline until = rcq::deadline::after(timeout);
    for (unsigned empty = 0; !done();) {
        const int n = cq.poll(wcs);
        if (n < 0) rcq::throw_error(std::string("ibv_poll_cq while waiting for ") + what, {}, EIO);
        if (n == 0) {
            if (++empty % 1024 == 0 && until.expired()) no_progress(what, timeout);
            continue;
        }
        until = rcq::deadline::after(timeout);
        for (int i = 0; i < n; ++i) {
            rcq::check_completion(wcs[i], what);
            on(wcs[i]);
        }
    }
}

inline const char* rule =
    "---------------------------------------------------------------------------------------\n";

template <class Connection>
void print_header(const char* title, const options& o, const Connection& conn, bool bandwidth) {
    std::printf("%s                    %s\n", rule, title);
    std::printf(" Device         : %-14s Connection type : RC\n",
                rcq::device_name(conn.device()).c_str());
    std::printf(" GID index      : %-14u Max inline data : %u[B]\n", conn.gid().index, o.inline_size);
    if (bandwidth)
        std::printf(" TX depth       : %-14zu Post list       : %zu\n CQ Moderation  : %zu\n",
                    sq_depth, o.post_list, o.cq_mod);
    else
        std::printf(" CQ Moderation  : %zu\n", o.cq_mod);
    std::printf("%s", rule);
    std::printf(" local address: QPN 0x%04x PSN 0x%06x GID %s\n", conn.local().qpn, conn.local().psn,
                rcq::gid_entry{.gid = conn.local().gid}.address().c_str());
    std::printf(" remote address: QPN 0x%04x PSN 0x%06x GID %s\n", conn.remote().qpn,
                conn.remote().psn, rcq::gid_entry{.gid = conn.remote().gid}.address().c_str());
    std::printf("%s", rule);
    std::fflush(stdout);
}

/// perftest's latency report, from the tick at which each message was
/// posted: consecutive posts are one round trip apart, and half of it is
/// reported. As perftest does, the two largest samples are left out, the
/// typical figure is the median, and the percentiles index the sorted rest.
inline void print_latency(const options& o, const std::vector<std::uint64_t>& posted,
                          double us_per_tick) {
    std::vector<double> half_rtt_us;
    half_rtt_us.reserve(posted.size());
    for (std::size_t i = 0; i + 1 < posted.size(); ++i)
        half_rtt_us.push_back(static_cast<double>(posted[i + 1] - posted[i]) * us_per_tick / 2);
    std::sort(half_rtt_us.begin(), half_rtt_us.end());
    constexpr std::size_t tail = 2;
    const std::size_t n = half_rtt_us.size() - tail; // iters >= 5, so n >= 2
    const double median = n % 2 ? half_rtt_us[n / 2] : (half_rtt_us[n / 2 - 1] + half_rtt_us[n / 2]) / 2;
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += half_rtt_us[i];
    const double avg = sum / static_cast<double>(n);
    double var = 0;
    for (std::size_t i = 0; i < n; ++i) var += (half_rtt_us[i] - avg) * (half_rtt_us[i] - avg);
    const double stdev = std::sqrt(var / static_cast<double>(n));
    auto at = [&](double q) { return half_rtt_us[std::min(n, static_cast<std::size_t>(std::ceil(n * q)))]; };

    std::printf(" #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    "
                "t_stdev[usec]   99%% percentile[usec]   99.9%% percentile[usec] \n");
    std::printf("%7zu%12llu%15.2f%15.2f%17.2f%15.2f%17.2f%23.2f%25.2f\n", o.size,
                static_cast<unsigned long long>(o.iters), half_rtt_us[0], half_rtt_us[n], median, avg,
                stdev, at(0.99), at(0.999));
    std::printf("%s", rule);
}

/// perftest's bandwidth report (MB = 2^20 bytes, as perftest counts).
inline void print_bandwidth(const options& o, clock::duration elapsed) {
    const double seconds = std::chrono::duration<double>(elapsed).count();
    const double bytes = static_cast<double>(o.size) * static_cast<double>(o.iters);
    std::printf(" #bytes     #iterations    BW average[MB/sec]   MsgRate[Mpps]\n");
    std::printf("%7zu%16llu%22.2f%16.6f\n", o.size, static_cast<unsigned long long>(o.iters),
                bytes / seconds / (1 << 20), static_cast<double>(o.iters) / seconds / 1e6);
    std::printf("%s", rule);
}

/// Runs `body`, turning errors into a message and an exit status: 0 success,
/// 1 failure, 2 bad command line.
template <class Body>
int run(const char* program, const char* usage, Body body) {
    try {
        body();
        return 0;
    } catch (const usage_error& e) {
        const bool help = *e.what() == '\0';
        if (!help) std::fprintf(stderr, "%s: %s\n", program, e.what());
        std::fprintf(help ? stdout : stderr, "%s", usage);
        return help ? 0 : 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: error: %s\n", program, e.what());
        return 1;
    }
}

} // namespace rcq_perf
