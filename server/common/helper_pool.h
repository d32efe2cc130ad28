#ifndef RAWFEAT_SERVER_COMMON_HELPER_POOL_H_
#define RAWFEAT_SERVER_COMMON_HELPER_POOL_H_

// A few persistent threads that help one request finish its CPU-bound
// items sooner (e.g. the entities of one GetFeatures call). The caller
// runs items itself and helpers take items only when idle, so a request
// never waits for a helper to start: under load the caller does all its
// items, and the pool costs it one wake-up.

#include <atomic>
#include <cstddef>
#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"

namespace rawfeat {

class HelperPool {
 public:
  // Starts `helpers` threads (0: Run calls every item on the caller).
  explicit HelperPool(int helpers);
  // Joins the helpers. REQUIRES: no Run in progress.
  ~HelperPool();
  HelperPool(const HelperPool&) = delete;
  HelperPool& operator=(const HelperPool&) = delete;

  // The most workers one Run uses: the caller and the helpers.
  int workers() const { return static_cast<int>(threads_.size()) + 1; }

  // Calls fn(i, worker) for every i in [0, n), items handed out one at a
  // time, and returns once every call has returned. `worker` is 0 for
  // the caller and 1..workers()-1 for a helper; no two calls of one Run in
  // flight at once share one, so it can index the Run's per-worker
  // scratch. fn must be safe to call concurrently for different i.
  // Thread-safe: concurrent Runs share the helpers.
  void Run(size_t n, absl::FunctionRef<void(size_t, int)> fn);

 private:
  struct Job {
    Job(size_t n, absl::FunctionRef<void(size_t, int)> fn) : n(n), fn(fn) {}
    const size_t n;
    const absl::FunctionRef<void(size_t, int)> fn;
    std::atomic<size_t> next{0};
    int helping = 0;  // helpers inside; guarded by HelperPool::mu_
  };
  // Runs items of `job` until none is left.
  static void Drain(Job* job, int worker);
  void Help(int worker);

  absl::Mutex mu_;
  absl::CondVar work_;                          // a job was queued, or stop_
  absl::CondVar left_;                          // a helper left a job
  std::deque<Job*> jobs_ ABSL_GUARDED_BY(mu_);  // with items not handed out
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_COMMON_HELPER_POOL_H_
