#include "client/progress.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_format.h"

namespace rawfeat {

Progress::Progress(std::string label, int64_t total_bytes)
    : label_(std::move(label)),
      total_(total_bytes),
      enabled_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

void Progress::Update(int64_t done_bytes, int64_t rows) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  Draw(done_bytes, rows);
}

void Progress::Draw(int64_t done_bytes, int64_t rows) {
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
          .count();
  const double rate = secs > 0 ? rows / secs : 0;
  std::string line;
  if (total_ > 0) {
    constexpr int kWidth = 30;
    const double frac = std::min(
        1.0, static_cast<double>(done_bytes) / static_cast<double>(total_));
    const int filled = static_cast<int>(frac * kWidth);
    line = absl::StrFormat("\r%s [%s%s] %3.0f%%  %d rows  %.0f rows/s ", label_,
                           std::string(filled, '#'),
                           std::string(kWidth - filled, '.'), frac * 100, rows,
                           rate);
  } else {
    line = absl::StrFormat("\r%s  %d rows  %.0f rows/s ", label_, rows, rate);
  }
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::Done() {
  if (enabled_ && drawn_) std::fputs("\n", stderr);
}

std::string HumanBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrFormat("%d B", bytes)
                : absl::StrFormat("%.1f %s", v, units[u]);
}

}  // namespace rawfeat
