// The suppression list in the engine (issue 25, docs/suppression.md).
//
// At start the daemon reads <data_dir>/suppression into one
// storage::SuppressionSet (load_suppressions), shared read-only by every
// shard. Changes afterwards (the admin API, hard bounces) are made by the
// first shard only: it appends the change to the file, and once that is
// fdatasync'd, sends the key to every shard, which keeps it in a small
// map of its own in front of the shared set. So a lookup (each RCPT from
// a trusted client, each injected recipient) takes no lock and makes no
// system call. The next start folds the changes into a new set.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proto/result.h"
#include "storage/dir_sync.h"
#include "storage/file_io.h"
#include "storage/suppression.h"

namespace ringmail::engine {

// The file replayed into a set under a random hash key; a missing file is
// an empty list. An error names the file and the line.
Result<std::shared_ptr<const storage::SuppressionSet>> load_suppressions(const std::string& path);

// A shard's view: the shared set and the changes since.
class Suppressions {
 public:
  explicit Suppressions(std::shared_ptr<const storage::SuppressionSet> base)
      : base_(std::move(base)) {}

  uint64_t key(std::string_view scope, std::string_view address) const {
    return base_->key(scope, address);
  }
  bool contains(uint64_t key) const {
    auto it = changes_.find(key);
    return it != changes_.end() ? it->second : base_->contains(key);
  }
  // Mail from `sender_domain` (may be empty) to `address`.
  bool suppressed(std::string_view sender_domain, std::string_view address) const {
    return contains(key(storage::kGlobalScope, address)) ||
           (!sender_domain.empty() && contains(key(sender_domain, address)));
  }
  void apply(uint64_t key, bool add) { changes_[key] = add; }

 private:
  std::shared_ptr<const storage::SuppressionSet> base_;
  std::unordered_map<uint64_t, bool> changes_;
};

// The first shard's writer of the file: appends a change, and calls
// `done(0)` once it is fdatasync'd (or `done(-errno)`).
class SuppressionWriter {
 public:
  SuppressionWriter(storage::FileIo& io, std::string path) : io_(io), path_(std::move(path)) {}
  ~SuppressionWriter();
  SuppressionWriter(const SuppressionWriter&) = delete;
  SuppressionWriter& operator=(const SuppressionWriter&) = delete;

  void append(const storage::SuppressionChange& c, std::function<void(int)> done);
  bool idle() const { return !sync_ || sync_->idle(); }

 private:
  int open();

  storage::FileIo& io_;
  std::string path_;
  int fd_ = -1;  // owned by sync_
  uint64_t end_ = 0;
  std::unique_ptr<storage::DirSync> sync_;
};

}  // namespace ringmail::engine
