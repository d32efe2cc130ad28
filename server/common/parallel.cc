#include "server/common/parallel.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/common/thread_name.h"

namespace rawfeat {

absl::Status ParallelFor(size_t n, int threads,
                         absl::FunctionRef<absl::Status(size_t, int)> fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  absl::Mutex mu;
  absl::Status first_error;
  auto work = [&](int worker) {
    for (size_t i = next++; i < n && !failed.load(); i = next++) {
      absl::Status s = fn(i, worker);
      if (!s.ok()) {
        absl::MutexLock l(&mu);
        if (first_error.ok()) first_error = s;
        failed = true;
      }
    }
  };
  const size_t helpers =
      std::min<size_t>(n == 0 ? 0 : n - 1, threads > 1 ? threads - 1 : 0);
  std::vector<std::thread> pool;
  pool.reserve(helpers);
  for (size_t t = 0; t < helpers; ++t) {
    pool.emplace_back([&work, t] {
      NameThisThread("rf-worker");
      work(static_cast<int>(t + 1));
    });
  }
  work(0);
  for (auto& t : pool) t.join();
  absl::MutexLock l(&mu);
  return first_error;
}

}  // namespace rawfeat
