#ifndef RAWFEAT_CLIENT_PROGRESS_H_
#define RAWFEAT_CLIENT_PROGRESS_H_

// A one-line progress bar with rows/s on stderr, drawn only when stderr is a
// terminal and at most 10 times a second. Not thread-safe.

#include <chrono>
#include <cstdint>
#include <string>

namespace rawfeat {

class Progress {
 public:
  // `total_bytes` 0 = unknown (no bar, just counts).
  Progress(std::string label, int64_t total_bytes);
  void Update(int64_t done_bytes, int64_t rows);
  // Ends the line (if anything was drawn).
  void Done();

 private:
  void Draw(int64_t done_bytes, int64_t rows);
  std::string label_;
  int64_t total_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
};

// "12.3 MiB".
std::string HumanBytes(uint64_t bytes);

}  // namespace rawfeat

#endif  // RAWFEAT_CLIENT_PROGRESS_H_
