// The suppression list's lookups on a shard (issue 25): a SuppressionSet
// of 10 million addresses, lookups per second for suppressed and for
// other addresses (each: a SipHash of scope and address, one or two table
// probes), and the memory the set takes (its table, and the process's
// resident set before and after building it).
//
//   build/bench/suppression_bench [--benchmark_filter=REGEX]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "storage/suppression.h"

namespace {

using ringmail::storage::kGlobalScope;
using ringmail::storage::SuppressionSet;

constexpr size_t kEntries = 10'000'000;

std::string address(size_t i) {
  return "user" + std::to_string(i) + "@d" + std::to_string(i % 1000) + ".example";
}

long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

struct Built {
  std::unique_ptr<SuppressionSet> set;
  long rss_before = 0, rss_after = 0;
};

// Built once for every benchmark, with global entries for the even
// numbers and a sender domain's entries for the odd ones.
const Built& built() {
  static Built b = [] {
    Built x;
    x.rss_before = rss_kib();
    x.set = std::make_unique<SuppressionSet>(0x1234, 0x5678);
    for (size_t i = 0; i < kEntries; ++i) {
      x.set->insert(x.set->key(i % 2 ? "news.example.com" : kGlobalScope, address(i)));
    }
    x.rss_after = rss_kib();
    return x;
  }();
  return b;
}

void lookup(benchmark::State& state, bool present) {
  const Built& b = built();
  std::vector<std::string> probes;
  for (size_t i = 0; i < 4096; ++i) {
    const size_t n = (i * 2654435761u) % kEntries;
    probes.push_back(present ? address(n) : address(n + kEntries));
  }
  size_t i = 0;
  benchmark::IterationCount hits = 0;
  for (auto _ : state) {
    hits += b.set->suppressed("news.example.com", probes[i++ & 4095]);
  }
  benchmark::DoNotOptimize(hits);
  if (present && hits != state.iterations()) state.SkipWithError("a suppressed address was missed");
  if (!present && hits != 0) state.SkipWithError("an address was suppressed that is not");
  state.SetItemsProcessed(state.iterations());
  state.counters["entries"] = static_cast<double>(b.set->size());
  state.counters["table_MiB"] = static_cast<double>(b.set->bytes()) / (1 << 20);
  state.counters["rss_growth_MiB"] = static_cast<double>(b.rss_after - b.rss_before) / 1024;
}

BENCHMARK_CAPTURE(lookup, suppressed, true);
BENCHMARK_CAPTURE(lookup, not_suppressed, false);

void insert_10m(benchmark::State& state) {
  for (auto _ : state) {
    SuppressionSet s(1, 2);
    s.reserve(kEntries);
    for (size_t i = 0; i < kEntries; ++i) s.insert(s.key(kGlobalScope, address(i)));
    benchmark::DoNotOptimize(s.size());
  }
  state.SetItemsProcessed(state.iterations() * kEntries);
}
BENCHMARK(insert_10m)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
