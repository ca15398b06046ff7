// DKIM costs per message: SHA-256 body hashing per backend (wolfCrypt, the
// reference, against the SHA-NI kernel), relaxed canonicalization plus
// hashing (and for 16 connections at once, as the daemon does it, with
// the lanes or without), and one signature with RSA-2048 and with Ed25519.
//
//   build/bench/dkim_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "proto/dkim.h"
#include "tls/dkim_key.h"
#include "tls/sha256.h"

namespace {

using ringmail::tls::Sha256Backend;

// Text lines of words (2 to 9 letters, single spaces), 20 to 80 bytes.
std::string text(size_t n) {
  std::mt19937 rng(7);
  std::string s;
  s.reserve(n);
  while (s.size() < n) {
    const size_t line = 20 + rng() % 60;
    for (size_t i = 0; i < line && s.size() < n; ++i) {
      s += (i > 0 && rng() % 6 == 0 && s.back() != ' ') ? ' ' : static_cast<char>('a' + rng() % 26);
    }
    s += "\r\n";
  }
  s.resize(n);
  return s;
}

void hash(benchmark::State& st, Sha256Backend b) {
  if (ringmail::tls::resolve(b) != b) {
    st.SkipWithError("backend not available on this CPU");
    return;
  }
  const std::string data = text(static_cast<size_t>(st.range(0)));
  for (auto _ : st) benchmark::DoNotOptimize(ringmail::tls::Sha256Job::hash(data, b));
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * st.range(0));
}
BENCHMARK_CAPTURE(hash, wolfcrypt, Sha256Backend::kWolfCrypt)
    ->Arg(1 << 10)
    ->Arg(10 << 10)
    ->Arg(100 << 10);
BENCHMARK_CAPTURE(hash, sha_ni, Sha256Backend::kShaNi)->Arg(1 << 10)->Arg(10 << 10)->Arg(100 << 10);

// Sixteen bodies at once (bulk sending): SHA-NI one after another against
// the AVX-512 16-lane kernel.
void hash16(benchmark::State& st, Sha256Backend b) {
  if ((b == Sha256Backend::kAvx512x16 && !ringmail::tls::cpu_features().avx512) ||
      (b == Sha256Backend::kAvx2x8 && !ringmail::tls::cpu_features().avx2)) {
    st.SkipWithError("not on this CPU");
    return;
  }
  std::vector<std::string> bodies;
  std::vector<std::string_view> views;
  for (int i = 0; i < 16; ++i)
    bodies.push_back(text(static_cast<size_t>(st.range(0))) + std::to_string(i));
  for (auto& x : bodies) views.push_back(x);
  std::vector<ringmail::tls::Sha256Digest> out(16);
  for (auto _ : st) {
    ringmail::tls::sha256_many(views.data(), views.size(), out.data(), b);
    benchmark::DoNotOptimize(out);
  }
  int64_t bytes = 0;
  for (auto& x : bodies) bytes += static_cast<int64_t>(x.size());
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * bytes);
}
BENCHMARK_CAPTURE(hash16, sha_ni, Sha256Backend::kShaNi)
    ->Arg(1 << 10)
    ->Arg(10 << 10)
    ->Arg(100 << 10);
BENCHMARK_CAPTURE(hash16, avx512x16, Sha256Backend::kAvx512x16)
    ->Arg(1 << 10)
    ->Arg(10 << 10)
    ->Arg(100 << 10);
BENCHMARK_CAPTURE(hash16, avx2x8, Sha256Backend::kAvx2x8)
    ->Arg(1 << 10)
    ->Arg(10 << 10)
    ->Arg(100 << 10);
BENCHMARK_CAPTURE(hash16, wolfcrypt, Sha256Backend::kWolfCrypt)->Arg(10 << 10);

// The daemon's path for 16 connections receiving bodies at once: each loop
// turn every connection gets a 16 KiB piece (one receive), canonicalized
// (relaxed) into its deferred hash job; at the end of the turn the waiting
// blocks are hashed, in the lanes (defer) or each job at once with SHA-NI.
void stream16(benchmark::State& st, bool defer) {
  if (defer && !ringmail::tls::cpu_features().avx512) {
    st.SkipWithError("no AVX-512");
    return;
  }
  constexpr size_t kPiece = 16 * 1024;
  std::vector<std::string> bodies;
  for (int i = 0; i < 16; ++i)
    bodies.push_back(text(static_cast<size_t>(st.range(0))) + std::to_string(i));
  for (auto _ : st) {
    std::vector<std::unique_ptr<ringmail::tls::Sha256Deferred>> jobs;
    std::vector<std::unique_ptr<ringmail::proto::dkim::RelaxedBody>> canon;
    for (int i = 0; i < 16; ++i) {
      jobs.push_back(std::make_unique<ringmail::tls::Sha256Deferred>(defer, Sha256Backend::kShaNi));
      auto* j = jobs.back().get();
      canon.push_back(std::make_unique<ringmail::proto::dkim::RelaxedBody>(
          [j](std::string_view s) { j->add(s); }));
    }
    std::vector<ringmail::tls::Sha256Deferred*> turn;
    for (size_t at = 0; at < bodies[0].size(); at += kPiece) {
      turn.clear();
      for (int i = 0; i < 16; ++i) {
        canon[i]->feed(std::string_view(bodies[i]).substr(at, kPiece));
        turn.push_back(jobs[i].get());
      }
      ringmail::tls::pump_many(turn.data(), turn.size(), 7, Sha256Backend::kAvx512x16);
    }
    for (int i = 0; i < 16; ++i) {
      canon[i]->finish();
      benchmark::DoNotOptimize(jobs[i]->finish());
    }
  }
  int64_t bytes = 0;
  for (auto& x : bodies) bytes += static_cast<int64_t>(x.size());
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * bytes);
}
BENCHMARK_CAPTURE(stream16, sha_ni_at_once, false)->Arg(10 << 10)->Arg(100 << 10);
BENCHMARK_CAPTURE(stream16, avx512x16_deferred, true)->Arg(10 << 10)->Arg(100 << 10);

void canon_and_hash(benchmark::State& st) {
  const std::string data = text(static_cast<size_t>(st.range(0)));
  for (auto _ : st) {
    ringmail::tls::Sha256Job h;
    ringmail::proto::dkim::RelaxedBody c([&](std::string_view s) { h.update(s); });
    c.feed(data);
    c.finish();
    benchmark::DoNotOptimize(h.finish());
  }
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * st.range(0));
}
BENCHMARK(canon_and_hash)->Arg(10 << 10)->Arg(100 << 10);

void sign(benchmark::State& st, ringmail::tls::DkimKey::Type t) {
  const auto pem = ringmail::tls::DkimKey::generate_pem(t, 2048);
  if (!pem) {
    st.SkipWithError(pem.error().c_str());
    return;
  }
  auto loaded = ringmail::tls::DkimKey::from_pem(*pem);
  if (!loaded) {
    st.SkipWithError(loaded.error().c_str());
    return;
  }
  const auto& key = *loaded;
  const std::string data = text(600);  // about a signed header block
  for (auto _ : st) {
    auto sig = key->sign(data);
    if (!sig) st.SkipWithError(sig.error().c_str());
    benchmark::DoNotOptimize(sig);
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations()));
}
BENCHMARK_CAPTURE(sign, rsa2048, ringmail::tls::DkimKey::Type::kRsa);
BENCHMARK_CAPTURE(sign, ed25519, ringmail::tls::DkimKey::Type::kEd25519);

}  // namespace

BENCHMARK_MAIN();
