#include "bench/workload_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, rawfeatd, "build/server/rawfeatd", "rawfeatd binary");
ABSL_FLAG(int64_t, events, 10000000, "events to load");
ABSL_FLAG(int, entities, 100000, "distinct entities");
ABSL_FLAG(int, days, 90, "days of history");
ABSL_FLAG(double, zipf, 1.1, "Zipf exponent of entity activity");
ABSL_FLAG(std::string, work_dir, "", "scratch directory (default: temp)");
ABSL_FLAG(bool, reuse_data, false,
          "with --work_dir holding the data dir of an earlier run with the "
          "same workload flags: start on it instead of loading again (for "
          "profiling); without it, a data dir an earlier run left in "
          "--work_dir is removed and the load starts on an empty store");
ABSL_FLAG(int, settle_seconds, 180,
          "most seconds to wait for compactions after loading");

namespace rawfeat {
namespace bench {

Workload WorkloadFromFlags() {
  Workload w(absl::GetFlag(FLAGS_events), absl::GetFlag(FLAGS_entities),
             absl::GetFlag(FLAGS_days), absl::GetFlag(FLAGS_zipf));
  w.reuse = absl::GetFlag(FLAGS_reuse_data) &&
            !absl::GetFlag(FLAGS_work_dir).empty();
  return w;
}

}  // namespace bench
}  // namespace rawfeat
