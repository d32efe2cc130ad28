#ifndef RAWFEAT_BENCH_WORKLOAD_FLAGS_H_
#define RAWFEAT_BENCH_WORKLOAD_FLAGS_H_

// The flags the load tools that start a loaded rawfeatd share (defined
// once, in workload_flags.cc): the binary, the workload's shape, the
// scratch directory and the wait for compactions after loading.

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"
#include "bench/workload.h"

ABSL_DECLARE_FLAG(std::string, rawfeatd);
ABSL_DECLARE_FLAG(int64_t, events);
ABSL_DECLARE_FLAG(int, entities);
ABSL_DECLARE_FLAG(int, days);
ABSL_DECLARE_FLAG(double, zipf);
ABSL_DECLARE_FLAG(std::string, work_dir);
ABSL_DECLARE_FLAG(int, settle_seconds);

namespace rawfeat {
namespace bench {

// The workload --events, --entities, --days and --zipf describe.
Workload WorkloadFromFlags();

}  // namespace bench
}  // namespace rawfeat

#endif  // RAWFEAT_BENCH_WORKLOAD_FLAGS_H_
