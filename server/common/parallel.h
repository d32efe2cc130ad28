#ifndef RAWFEAT_SERVER_COMMON_PARALLEL_H_
#define RAWFEAT_SERVER_COMMON_PARALLEL_H_

// A bounded parallel loop for CPU-bound request work (snapshots, joins).

#include <cstddef>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace rawfeat {

// Calls fn(i, worker) for every i in [0, n) on up to `threads` threads
// (the caller is worker 0; items are handed out one at a time, so uneven
// items balance). `worker` < threads identifies the calling thread, for
// per-thread scratch state. After the first error no new item starts; that
// error is returned. fn must be safe to call concurrently for different i.
absl::Status ParallelFor(size_t n, int threads,
                         absl::FunctionRef<absl::Status(size_t, int)> fn);

// A per-worker counter on its own cache line, so workers of a ParallelFor
// that count per item do not share one.
struct alignas(64) PaddedCount {
  size_t n = 0;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_COMMON_PARALLEL_H_
