// bench/hot_path.cpp - time per operation of rcq's post and poll paths
// against the same work written with raw verbs, on the stub provider (no
// device: what is timed is the caller's side plus one call into a counting
// function, the same for both).
//
//   rcq_hot_path [--benchmark_filter=send] [--benchmark_repetitions=5] ...
//
// Google Benchmark runs raw/X and rcq/X one after the other; at the end a
// table puts each pair side by side.
#include "hot_path_ops.hpp"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace {

template <class Variant>
void run(benchmark::State& state) {
    rcq::stub::provider stub;
    Variant v(stub);
    std::uint64_t i = 0;
    for (auto _ : state) {
        if (!v.step(i++)) {
            state.SkipWithError("a post or poll failed");
            break;
        }
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(i));
}

struct entry {
    const char* name;
    void (*fn)(benchmark::State&);
};

// In pairs: raw first, then rcq. The three polling policies are each
// compared with the one hand-written poll loop.
const entry benchmarks[] = {
    {"raw/send_signaled", run<rcq_bench::raw_send_signaled>},
    {"rcq/send_signaled", run<rcq_bench::rcq_send_signaled>},
    {"raw/send_selective", run<rcq_bench::raw_send_selective>},
    {"rcq/send_selective", run<rcq_bench::rcq_send_selective>},
    {"raw/write_chain16", run<rcq_bench::raw_write_chain>},
    {"rcq/write_chain16", run<rcq_bench::rcq_write_chain>},
    {"raw/recv", run<rcq_bench::raw_recv>},
    {"rcq/recv", run<rcq_bench::rcq_recv>},
    {"raw/poll", run<rcq_bench::raw_poll>},
    {"rcq/poll_busy", run<rcq_bench::rcq_poll_busy>},
    {"rcq/poll_blocking", run<rcq_bench::rcq_poll_blocking>},
    {"rcq/poll_adaptive", run<rcq_bench::rcq_poll_adaptive>},
};

/// The console report, plus a raw-vs-rcq table once all runs are done.
class side_by_side : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (const Run& r : runs) {
            if (r.error_occurred) continue;
            // With repetitions, keep the median (or the only run).
            if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
            const double ns = r.GetAdjustedCPUTime() *
                              benchmark::GetTimeUnitMultiplier(benchmark::kNanosecond) /
                              benchmark::GetTimeUnitMultiplier(r.time_unit);
            const std::string name = r.run_name.function_name;
            if (r.run_type != Run::RT_Aggregate && times_.count(name)) continue;
            if (!times_.count(name)) order_.push_back(name);
            times_[name] = ns;
        }
    }

    void Finalize() override {
        ConsoleReporter::Finalize();
        std::printf("\n%-16s %12s %12s %9s\n", "operation", "raw ns/op", "rcq ns/op", "rcq/raw");
        for (const std::string& name : order_) {
            if (name.rfind("rcq/", 0) != 0) continue;
            const double ns = times_[name];
            std::string op = name.substr(4);
            // poll_busy, poll_blocking, poll_adaptive are against raw/poll.
            const std::string raw = "raw/" + (op.rfind("poll_", 0) == 0 ? std::string("poll") : op);
            auto it = times_.find(raw);
            if (it == times_.end()) {
                std::printf("%-16s %12s %12.2f %9s\n", op.c_str(), "-", ns, "-");
                continue;
            }
            std::printf("%-16s %12.2f %12.2f %9.3f\n", op.c_str(), it->second, ns, ns / it->second);
        }
    }

private:
    std::map<std::string, double> times_; // CPU ns per operation
    std::vector<std::string> order_;      // as run
};

} // namespace

int main(int argc, char** argv) {
    for (const entry& e : benchmarks) benchmark::RegisterBenchmark(e.name, e.fn);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    side_by_side reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    return 0;
}
