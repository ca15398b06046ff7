#include "proto/mx.h"

#include <algorithm>

#include "proto/address.h"

namespace ringmail::proto {

namespace {

std::string canonical(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  return ascii_lower(host);
}

// splitmix64: a small, good, deterministic generator for the shuffle.
uint64_t next(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

MxPlan plan_mx(std::string_view domain, std::vector<MxRecord> records, std::string_view self,
               uint64_t seed) {
  MxPlan plan;
  if (records.empty()) {
    plan.kind = MxPlan::Kind::kImplicit;
    plan.hosts.push_back(canonical(domain));
    return plan;
  }
  for (auto& r : records) r.host = canonical(r.host);
  // RFC 7505: a single MX with an empty host (the root) and preference 0.
  if (records.size() == 1 && records[0].host.empty() && records[0].preference == 0) {
    plan.kind = MxPlan::Kind::kNullMx;
    return plan;
  }
  std::stable_sort(records.begin(), records.end(), [](const MxRecord& a, const MxRecord& b) {
    return a.preference < b.preference;
  });
  // Shuffle each run of equal preference (Fisher-Yates).
  for (size_t i = 0; i < records.size();) {
    size_t j = i;
    while (j < records.size() && records[j].preference == records[i].preference) ++j;
    for (size_t k = j - 1; k > i; --k) {
      const size_t pick = i + static_cast<size_t>(next(seed) % (k - i + 1));
      std::swap(records[k], records[pick]);
    }
    i = j;
  }
  const std::string me = canonical(self);
  uint32_t self_pref = UINT32_MAX;
  for (const auto& r : records) {
    if (!me.empty() && r.host == me) self_pref = std::min<uint32_t>(self_pref, r.preference);
  }
  for (const auto& r : records) {
    if (r.host.empty()) continue;  // a root host among others: unusable, skipped
    if (r.preference >= self_pref) continue;
    if (std::find(plan.hosts.begin(), plan.hosts.end(), r.host) != plan.hosts.end()) continue;
    plan.hosts.push_back(r.host);
  }
  if (plan.hosts.empty())
    plan.kind = self_pref != UINT32_MAX ? MxPlan::Kind::kLoop : MxPlan::Kind::kNullMx;
  return plan;
}

}  // namespace ringmail::proto
