#ifndef RAWFEAT_SERVER_STORAGE_SEQ_FILE_H_
#define RAWFEAT_SERVER_STORAGE_SEQ_FILE_H_

// The seq file: what the store knows about issued seqs, kept outside
// RocksDB's write-ahead log so that a damaged log cannot take it along.
//   reserved:   every seq ever issued is below it (seqs are reserved in
//               blocks, the file synced before any seq of a block is used),
//               so a lost range is never issued again.
//   clean_next: after a clean stop, exactly the next seq; 0 while running
//               or after a crash. A store that comes back with fewer seqs
//               than a clean stop left has lost acknowledged events.
// Text, one `key value` per line, replaced atomically (temp file, fsync,
// rename, fsync of the directory). Thread-compatible.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace rawfeat {

struct SeqFile {
  uint64_t reserved = 0;
  uint64_t clean_next = 0;

  // NOT_FOUND if the file does not exist (a store from before the file);
  // DATA_LOSS if it is malformed.
  static absl::StatusOr<SeqFile> Read(const std::string& dir);
  // Errors: UNAVAILABLE (write or sync failed; the old file stays).
  absl::Status Write(const std::string& dir) const;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_STORAGE_SEQ_FILE_H_
