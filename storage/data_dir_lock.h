// The one-daemon-per-data_dir lock (the leveldb LOCK file idea).
//
// ringmaild takes an exclusive flock(2) on <data_dir>/ringmaild.lock before
// it recovers the spool and holds it for its whole life: recovery removes
// segments it thinks are finished, which would delete the acknowledged
// messages of a daemon still running on the same directory. The lock file
// also holds the owner's pid, for the refusal message. flock is released by
// the kernel when the process dies (kill -9 included), so a stale file never
// blocks a restart.
//
// Tools that only read the spool do not take the lock (a running daemon must
// not be kept from starting by a spool-list); they ask who holds it and say
// that they read a live spool.
#pragma once

#include <string>

#include "proto/result.h"

namespace ringmail::storage {

class DataDirLock {
 public:
  static constexpr const char* kFileName = "ringmaild.lock";

  DataDirLock() = default;
  ~DataDirLock();
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

  // Takes the exclusive lock on `data_dir` (created when missing) and
  // writes our pid into the file, or says in one line why not, such as
  // "another ringmaild (pid 1234) uses /var/spool/ringmail".
  Result<void> acquire(const std::string& data_dir);

  // The pid of the process holding the lock on `data_dir`, 0 when nobody
  // holds it (or the directory has no lock file), -1 when it is held by a
  // process whose pid could not be read. Does not create anything.
  static long holder(const std::string& data_dir);

 private:
  int fd_ = -1;
};

}  // namespace ringmail::storage
