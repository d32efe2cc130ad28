#include "server/common/helper_pool.h"

#include <algorithm>

#include "server/common/thread_name.h"

namespace rawfeat {

HelperPool::HelperPool(int helpers) {
  threads_.reserve(std::max(helpers, 0));
  for (int t = 0; t < helpers; ++t) {
    threads_.emplace_back([this, t] {
      NameThisThread("rf-lookup");
      Help(t + 1);
    });
  }
}

HelperPool::~HelperPool() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
    work_.SignalAll();
  }
  for (auto& t : threads_) t.join();
}

void HelperPool::Drain(Job* job, int worker) {
  for (size_t i = job->next.fetch_add(1, std::memory_order_relaxed); i < job->n;
       i = job->next.fetch_add(1, std::memory_order_relaxed)) {
    job->fn(i, worker);
  }
}

void HelperPool::Help(int worker) {
  absl::MutexLock l(&mu_);
  while (true) {
    while (!stop_ && jobs_.empty()) work_.Wait(&mu_);
    if (stop_) return;
    Job* job = jobs_.front();
    if (job->next.load(std::memory_order_relaxed) >= job->n) {
      jobs_.pop_front();  // every item handed out: nothing to help with
      continue;
    }
    ++job->helping;
    mu_.Unlock();
    Drain(job, worker);
    mu_.Lock();
    // Its owner may be waiting for it; the job is gone once `helping` is
    // back to 0 and the owner has seen it.
    if (!jobs_.empty() && jobs_.front() == job) jobs_.pop_front();
    if (--job->helping == 0) left_.SignalAll();
  }
}

void HelperPool::Run(size_t n, absl::FunctionRef<void(size_t, int)> fn) {
  if (threads_.empty() || n <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i, 0);
    return;
  }
  Job job(n, fn);
  {
    absl::MutexLock l(&mu_);
    jobs_.push_back(&job);
    work_.SignalAll();
  }
  Drain(&job, 0);
  absl::MutexLock l(&mu_);
  auto at = std::find(jobs_.begin(), jobs_.end(), &job);
  if (at != jobs_.end()) jobs_.erase(at);
  while (job.helping > 0) left_.Wait(&mu_);
}

}  // namespace rawfeat
