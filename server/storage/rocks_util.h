#ifndef RAWFEAT_SERVER_STORAGE_ROCKS_UTIL_H_
#define RAWFEAT_SERVER_STORAGE_ROCKS_UTIL_H_

// Conversions between RocksDB's types and rawfeat's, for storage/*.cc only
// (rocksdb::Status never leaves this directory). Thread-safe.

#include <cstddef>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rocksdb/slice.h"
#include "rocksdb/status.h"
#include "rocksdb/write_batch.h"

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

// A WriteBatch kept from write to write in `*slot` (its buffer stays
// allocated, so a write path does not fault fresh pages in for every
// batch): the scope hands it out empty (created with room for `reserve`
// bytes if there is none) and frees it at its end if it grew past `keep`.
// Not thread-safe: the slot's owner serializes the scopes.
class ReusedWriteBatch {
 public:
  ReusedWriteBatch(std::unique_ptr<rocksdb::WriteBatch>* slot, size_t reserve,
                   size_t keep);
  ~ReusedWriteBatch();
  ReusedWriteBatch(const ReusedWriteBatch&) = delete;
  ReusedWriteBatch& operator=(const ReusedWriteBatch&) = delete;

  rocksdb::WriteBatch& operator*() const { return **slot_; }
  rocksdb::WriteBatch* operator->() const { return slot_->get(); }

 private:
  std::unique_ptr<rocksdb::WriteBatch>* const slot_;
  const size_t keep_;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_STORAGE_ROCKS_UTIL_H_
