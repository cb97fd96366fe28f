// tests/overhead/overhead_probe.cpp - runs each hot-path variant of
// bench/hot_path_ops.hpp, raw and rcq, for callgrind to count.
//
//   valgrind --tool=callgrind --collect-atstart=no overhead_probe [N]
//
// Each variant runs twice, N and then 2N steps, each time on a fresh stub.
// Collection is switched on only around the steps, and the counts are dumped
// under the variant's name and step count (CALLGRIND_DUMP_STATS_AT), so each
// dump holds one run. run.sh takes the difference of the two runs: the cost
// of exactly N steps, with what is paid once (entering the loop, the
// callgrind switches) cancelled out.
//
// The probe also checks that each raw variant and its rcq twin handed the
// stub provider the same work (the provider's tally, fingerprint included):
// otherwise comparing their instruction counts would mean nothing.
//
// Output, one line per comparison, for run.sh:
//   pair <operation> <raw variant> <rcq variant> <N>
// and for the asynchronous layer, which does more than raw verbs (it
// delivers the completion to a waiting coroutine or callback) and is held to
// a ratio instead of equality:
//   ratio <operation> <raw variant> <rcq variant> <N> <limit>
// with dumps named "<variant> x<N>" and "<variant> x<2N>".
// Exit status 0, or 1 when a step failed or the work differed.
#include "async_ops.hpp"
#include "hot_path_ops.hpp"

#include <valgrind/callgrind.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

// Not inlined, so that every variant is measured inside the same kind of loop.
template <class Variant>
[[gnu::noinline]] bool run_steps(Variant& v, std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i)
        if (!v.step(i)) return false;
    return true;
}

struct measured {
    bool ok = false;
    rcq::stub::tally work; // of the longer run
};

// A variant with run(n) (the asynchronous layer's) runs n whole operations
// itself, on a stub that completes what is posted.
template <class Variant>
bool run_counted(const char* name, std::uint64_t n, rcq::stub::tally& work) {
    rcq::stub::provider stub;
    constexpr bool whole_runs = requires(Variant& v) { v.run(n); };
    if constexpr (whole_runs) {
        stub.complete_posted(true);
        stub.completions_per_poll(16);
    }
    Variant v(stub); // set-up is not counted
    stub.reset_counts();
    CALLGRIND_TOGGLE_COLLECT;
    bool ok;
    if constexpr (whole_runs)
        ok = v.run(n);
    else
        ok = run_steps(v, n);
    CALLGRIND_TOGGLE_COLLECT;
    const std::string dump = std::string(name) + " x" + std::to_string(n);
    CALLGRIND_DUMP_STATS_AT(dump.c_str());
    work = stub.counts();
    return ok;
}

template <class Variant>
measured measure(const char* name, std::uint64_t n) {
    measured m;
    m.ok = run_counted<Variant>(name, n, m.work);
    m.ok = run_counted<Variant>(name, 2 * n, m.work) && m.ok;
    return m;
}

void print_tally(const char* name, const rcq::stub::tally& t) {
    std::printf("  %-20s post_send %llu (wrs %llu, signaled %llu), post_recv %llu, polls %llu "
                "(completions %llu), fingerprint %016llx\n",
                name, (unsigned long long)t.post_send_calls, (unsigned long long)t.send_wrs,
                (unsigned long long)t.signaled_sends, (unsigned long long)t.post_recv_calls,
                (unsigned long long)t.poll_calls, (unsigned long long)t.completions,
                (unsigned long long)t.fingerprint);
}

int failures = 0;

template <class Rcq>
void compare(const char* op, const char* raw_name, const char* rcq_name, std::uint64_t n,
             const measured& raw) {
    const measured rcq = measure<Rcq>(rcq_name, n);
    if (!raw.ok || !rcq.ok || !(raw.work == rcq.work)) {
        std::printf("FAIL %s: %s\n", op,
                    !raw.ok || !rcq.ok ? "a step failed" : "raw and rcq did different work");
        print_tally(raw_name, raw.work);
        print_tally(rcq_name, rcq.work);
        ++failures;
        return;
    }
    std::printf("pair %s %s %s %llu\n", op, raw_name, rcq_name, (unsigned long long)n);
}

template <class Raw, class Rcq>
void pair(const char* op, const char* raw_name, const char* rcq_name, std::uint64_t n) {
    compare<Rcq>(op, raw_name, rcq_name, n, measure<Raw>(raw_name, n));
}

// -- the asynchronous layer ----------------------------------------------------
// Each variant runs n whole operations in its run(n) (see run_counted). The work compared is the number of requests, polls and
// completions (the wr_ids differ: each side's point to its own operations).

bool same_async_work(const rcq::stub::tally& a, const rcq::stub::tally& b) {
    return a.send_wrs == b.send_wrs && a.signaled_sends == b.signaled_sends &&
           a.poll_calls == b.poll_calls && a.completions == b.completions;
}

template <class Rcq>
void ratio(const char* op, const char* raw_name, const char* rcq_name, std::uint64_t n,
           const measured& raw, const char* limit) {
    const measured rcq = measure<Rcq>(rcq_name, n);
    if (!raw.ok || !rcq.ok || !same_async_work(raw.work, rcq.work)) {
        std::printf("FAIL %s: %s\n", op,
                    !raw.ok || !rcq.ok ? "a run failed" : "raw and rcq did different work");
        print_tally(raw_name, raw.work);
        print_tally(rcq_name, rcq.work);
        ++failures;
        return;
    }
    std::printf("ratio %s %s %s %llu %s\n", op, raw_name, rcq_name, (unsigned long long)n, limit);
}

} // namespace

int main(int argc, char** argv) {
    using namespace rcq_bench;
    std::uint64_t n = 1024;
    if (argc > 1) n = std::strtoull(argv[1], nullptr, 10);
    // Selective signaling completes a batch every signal_every sends: keep
    // whole batches so that both sides end in the same state.
    if (n == 0 || n % signal_every != 0) {
        std::fprintf(stderr, "usage: %s [N]   (N a positive multiple of %zu)\n", argv[0],
                     signal_every);
        return 2;
    }

    pair<raw_send_signaled, rcq_send_signaled>("send_signaled", "raw/send_signaled",
                                               "rcq/send_signaled", n);
    pair<raw_send_selective, rcq_send_selective>("send_selective", "raw/send_selective",
                                                 "rcq/send_selective", n);
    pair<raw_write_chain, rcq_write_chain>("write_chain16", "raw/write_chain16",
                                           "rcq/write_chain16", n);
    pair<raw_recv, rcq_recv>("recv", "raw/recv", "rcq/recv", n);

    pair<raw_route, rcq_route>("route16", "raw/route16", "rcq/route16", n);

    const measured raw_poll_run = measure<raw_poll>("raw/poll", n);
    compare<rcq_poll_busy>("poll_busy", "raw/poll", "rcq/poll_busy", n, raw_poll_run);
    compare<rcq_poll_blocking>("poll_blocking", "raw/poll", "rcq/poll_blocking", n,
                                         raw_poll_run);
    compare<rcq_poll_adaptive>("poll_adaptive", "raw/poll", "rcq/poll_adaptive", n,
                                         raw_poll_run);

    using namespace rcq_overhead;
    const measured raw_async = measure<raw_send_dispatch>("raw/send_dispatch", n);
    // The callback is held to the goal, 1.5x (measured: 1.45x); the
    // coroutine a little above what was measured (2.94x), so that a
    // regression fails. The coroutine's extra cost over the callback is
    // Asio's awaitable machinery (use_awaitable's initiation, the frame of
    // each co_await of an asynchronous operation, the resumption through the
    // awaitable thread, the any_io_executor the handler carries).
    ratio<rcq_send_awaited>("async_send_await", "raw/send_dispatch", "rcq/async_send_await", n,
                            raw_async, "3.0");
    ratio<rcq_send_callback>("async_send_cb", "raw/send_dispatch", "rcq/async_send_callback", n,
                             raw_async, "1.5");
    return failures == 0 ? 0 : 1;
}
