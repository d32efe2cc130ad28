#ifndef RAWFEAT_CLIENT_OUTPUT_FILE_H_
#define RAWFEAT_CLIENT_OUTPUT_FILE_H_

// An output file that appears complete or not at all: written to
// "<path>.partial" and renamed over <path> by Commit(). "-" writes to
// stdout. Not thread-safe.

#include <fstream>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

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

// A problem on this machine (a file that cannot be read or written), not
// a server's answer: INVALID_ARGUMENT marked so that the CLI prints it
// without a status code.
absl::Status LocalError(absl::string_view message);
bool IsLocalError(const absl::Status& status);

}  // namespace rawfeat

#endif  // RAWFEAT_CLIENT_OUTPUT_FILE_H_
