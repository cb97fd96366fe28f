// stub_benchmark: times a hot path of one's own with Google Benchmark on the
// counting stub provider (rcq::stub): here, a signaled SEND and a poll.
// No RDMA device is used or needed; what is timed is the caller's code plus
// one call into a counting function (see <rcq/stub/provider.hpp>).
#include <rcq/rcq.hpp>
#include <rcq/stub/provider.hpp>

#include <benchmark/benchmark.h>

static void send_then_poll(benchmark::State& state) {
    rcq::stub::provider stub;                 // a context, PD, CQ and QP in memory
    rcq::stub::rts_qp qp(stub);               // an rcq::qp<rcq::state::rts> over its QP
    rcq::stub::adopted_cq cq(stub);           // an rcq::cq over its CQ
    const rcq::stub::region memory = stub.memory();
    std::uint64_t id = 0;
    for (auto _ : state) {
        const ibv_sge sge = rcq::local(memory, 0, 64);
        rcq::send_op wr(sge, id++);
        benchmark::DoNotOptimize(qp.get().post_send(wr));
        ibv_wc wc;
        benchmark::DoNotOptimize(ibv_poll_cq(cq.get(), 1, &wc));
    }
    // What the provider was handed, for a sanity check of the loop.
    state.counters["sends"] = static_cast<double>(stub.counts().send_wrs);
}
BENCHMARK(send_then_poll);

BENCHMARK_MAIN();
