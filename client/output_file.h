#ifndef RAWFEAT_CLIENT_OUTPUT_FILE_H_
#define RAWFEAT_CLIENT_OUTPUT_FILE_H_

// An output file that appears complete or not at all: written to
// "<path>.partial" and renamed over <path> by Commit(). "-" writes to
// stdout. Not thread-safe.

#include <fstream>
#include <ostream>
#include <string>

#include "absl/status/status.h"

namespace rawfeat {

class OutputFile {
 public:
  // Errors: FAILED_PRECONDITION naming the path if it cannot be created.
  absl::Status Open(const std::string& path);
  std::ostream& out() { return path_ == "-" ? stdout_ : file_; }
  // Flushes, closes and renames into place. Errors: the write or rename
  // failed (the partial file is left for inspection).
  absl::Status Commit();
  bool is_stdout() const { return path_ == "-"; }

 private:
  std::string path_;
  std::ofstream file_;
  std::ostream stdout_{nullptr};
};

// Writes `text` to `path` atomically (temp file + rename).
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::string& text);

}  // namespace rawfeat

#endif  // RAWFEAT_CLIENT_OUTPUT_FILE_H_
