#ifndef RAWFEAT_SERVER_STORAGE_ROCKS_UTIL_H_
#define RAWFEAT_SERVER_STORAGE_ROCKS_UTIL_H_

// Conversions between RocksDB's types and rawfeat's, for storage/*.cc only
// (rocksdb::Status never leaves this directory). Thread-safe.

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rocksdb/slice.h"
#include "rocksdb/status.h"

namespace rawfeat {

inline rocksdb::Slice ToSlice(absl::string_view s) {
  return rocksdb::Slice(s.data(), s.size());
}
inline absl::string_view ToView(const rocksdb::Slice& s) {
  return absl::string_view(s.data(), s.size());
}

// The one place rocksdb::Status becomes absl::Status: "what: RocksDB's
// message", with NoSpace as RESOURCE_EXHAUSTED ("disk full"), I/O and busy
// errors as UNAVAILABLE, corruption as DATA_LOSS.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_STORAGE_ROCKS_UTIL_H_
