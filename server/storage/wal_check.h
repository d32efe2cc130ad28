#ifndef RAWFEAT_SERVER_STORAGE_WAL_CHECK_H_
#define RAWFEAT_SERVER_STORAGE_WAL_CHECK_H_

// A read-only check of RocksDB's write-ahead log files (`*.log` in a data
// dir), to tell an operator where a damaged log is damaged: RocksDB's own
// recovery reports that a log is corrupt but not which file or offset.
// Reads the documented log format (32 KiB blocks of records, each with a
// masked CRC32C of its type and payload, a 16-bit length and a type).
// And the one change the store makes to those files itself: deleting the
// empty ones RocksDB leaves behind. Thread-compatible; used only while the
// store opens.

#include <cstdint>
#include <string>
#include <vector>

namespace rawfeat {

struct WalDamage {
  std::string file;     // path of the .log file
  uint64_t offset = 0;  // byte offset of the first bad record
  uint64_t size = 0;    // file size
  std::string reason;   // "checksum mismatch", "truncated record", ...
  // The damage is an incomplete last record with nothing valid after it
  // (what a write cut short leaves), not a bad record inside the log.
  bool at_tail = false;
};

// The first damage of every WAL file in `dir`, oldest file first; empty if
// every record checks out (or there are no logs).
std::vector<WalDamage> FindWalDamage(const std::string& dir);

// Deletes the empty (0-byte) WAL files of `dir` numbered below
// `live_log` (the open store's current log) and returns how many it
// deleted. RocksDB 7.8 creates a new log at every open and keeps the one of
// a start that wrote nothing until a later flush (fixed upstream in 8.3),
// and even then leaves some behind: every restart of an idle server, or of
// one in a crash loop, left one more file, and every open lists them all.
// An empty log holds nothing to replay, and the store does not track logs
// in its manifest, so deleting one loses nothing. Call only with the store
// open read-write.
int RemoveEmptyWals(const std::string& dir, uint64_t live_log);

// CRC-32C (Castagnoli) of `n` bytes, continuing from `crc`.
uint32_t Crc32c(uint32_t crc, const char* data, size_t n);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_STORAGE_WAL_CHECK_H_
