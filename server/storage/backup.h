#ifndef RAWFEAT_SERVER_STORAGE_BACKUP_H_
#define RAWFEAT_SERVER_STORAGE_BACKUP_H_

// Online backups of a live store, and restores into a new data dir.
//
// A backup root holds any number of backups of one store:
//   ROOT/RAWFEAT_BACKUPS      marks the root; names the store (RocksDB's
//                             IDENTITY), so two stores never mix
//   ROOT/shared/NAME.sst      table files, shared by every backup that has
//                             them (an incremental backup copies only new
//                             ones: table files never change once written)
//   ROOT/backup-W/            one backup at watermark W: RocksDB's other
//                             files (MANIFEST, log, OPTIONS, ...), the seq
//                             file, and MANIFEST.rawfeat (W and its tables)
// A backup directory appears by an atomic rename once every file is
// written and synced: a failed backup (a full disk) leaves none behind.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "server/storage/event_store.h"

namespace rawfeat {

struct BackupResult {
  uint64_t watermark = 0;
  std::string dir;  // ROOT/backup-W
  int64_t files_copied = 0;
  int64_t files_reused = 0;  // table files already in ROOT/shared
  uint64_t bytes_copied = 0;
};

// Backs `store` up into `root` (created if absent) while it serves: the
// backup holds exactly the events with seq <= its watermark. Errors:
// FAILED_PRECONDITION (root is not empty and not a backup root, or holds
// another store's backups), RESOURCE_EXHAUSTED (disk full), UNAVAILABLE
// (other I/O). The store keeps serving whatever happens.
absl::StatusOr<BackupResult> BackupStore(EventStore* store,
                                         const std::string& root);

// Restores a backup into `data_dir`, which must not exist or be empty
// (nor be a mount point: the restore is written to DATA_DIR.restoring
// beside it and renamed onto it once complete, so a failed restore leaves
// nothing behind). `backup` is a ROOT/backup-W directory or a root (its
// newest backup).
// Returns the backup's watermark. Errors: NOT_FOUND (no backup there),
// FAILED_PRECONDITION (data_dir not empty), DATA_LOSS (a file of the
// backup is missing or has the wrong size), RESOURCE_EXHAUSTED /
// UNAVAILABLE (I/O).
absl::StatusOr<uint64_t> RestoreBackup(const std::string& backup,
                                       const std::string& data_dir);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_STORAGE_BACKUP_H_
