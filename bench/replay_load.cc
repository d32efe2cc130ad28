// End-to-end benchmark of replay jobs on the features_load workload:
//   (a) ReadEvents of the whole stream (events/s at the client), read
//       into v1::Event messages and as views (Client::ReadEventViews),
//       alternating, against db_bench fillseq+readseq on the same number of
//       keys, same run; with the server's and the client's CPU per event;
//   (b) `rawfeat copy` of a slice of the stream into a second rawfeatd;
//   (c) a 30-day daily `rawfeat backfill` with one shared pass and with
//       one Snapshot per day (--separate-passes), same watermark; the two
//       output folders must be identical.
//
//   replay_load --rawfeatd build/server/rawfeatd --rawfeat build/client/rawfeat

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "bench/scratch_dir.h"
#include "bench/workload.h"
#include "bench/workload_flags.h"
#include "client/client.h"
#include "client/local_server.h"

ABSL_FLAG(std::string, rawfeat, "build/client/rawfeat", "rawfeat CLI binary");
ABSL_FLAG(std::string, db_bench, "/usr/bin/db_bench",
          "RocksDB db_bench (empty: skip the reference run)");
ABSL_FLAG(int64_t, copy_events, 1000000, "events copied to a second server");
ABSL_FLAG(int, backfill_days, 30, "daily as-of times of the backfill");
ABSL_FLAG(bool, replay_only, false,
          "measure only the ReadEvents replay (no copy, backfill, db_bench)");
ABSL_FLAG(int, replay_rounds, 3,
          "replays of each kind (messages, views), alternating; the best "
          "counts");

namespace rawfeat {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs a shell command, returns its wall time in seconds (-1 on failure).
double Timed(const std::string& cmd) {
  std::fprintf(stderr, "  $ %s\n", cmd.c_str());
  const auto start = Clock::now();
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "failed: %s\n", cmd.c_str());
    return -1;
  }
  return Since(start);
}

int Main() {
  const bench::Workload workload = bench::WorkloadFromFlags();
  const ScratchDir scratch(absl::GetFlag(FLAGS_work_dir), "rlbench");
  const std::string& work = scratch.path();
  const std::string cli = absl::GetFlag(FLAGS_rawfeat);
  std::printf("replay_load: %lld events, %d entities, %d days\n",
              static_cast<long long>(workload.events), workload.entities,
              workload.days);
  const auto loaded = workload.StartLoaded(absl::GetFlag(FLAGS_rawfeatd), work,
                                           "", absl::GetFlag(FLAGS_settle_seconds));
  if (loaded == nullptr) return 1;
  LocalServer& server = *loaded;
  Client client(server.address());
  auto status = client.GetStatus();
  if (!status.ok()) return 1;
  const uint64_t watermark = status->watermark();

  // (a) Replay of the whole stream in seq order, read into messages and
  // as views, alternating; each kind's fastest round counts (this
  // machine's noise slows runs, never speeds them).
  v1::ReadEventsRequest read;
  read.set_stream("orders");
  read.set_watermark(watermark);
  struct Replay {
    const char* name;
    double rate = 0, server_us = 0, client_us = 0;
  };
  Replay kinds[2] = {{"v1::Event messages"}, {"event views"}};
  int64_t replayed = 0;
  for (int round = 0; round < absl::GetFlag(FLAGS_replay_rounds); ++round) {
    for (int kind = 0; kind < 2; ++kind) {
      int64_t n = 0;
      double checksum = 0;  // every value read, so none is skipped
      const double server_cpu = server.CpuSeconds();
      const double client_cpu = bench::RusageCpuSeconds(RUSAGE_SELF);
      const auto start = Clock::now();
      absl::Status s =
          kind == 0
              ? client.ReadEvents(read,
                                  [&](const v1::ReadEventsResponse& c) {
                                    for (const v1::Event& e : c.events()) {
                                      for (const auto& [name, v] : e.fields()) {
                                        checksum += v.double_value();
                                      }
                                    }
                                    n += c.events_size();
                                    return true;
                                  })
              : client.ReadEventViews(
                    read, [&](const IngestBatch& events, uint64_t) {
                      for (const IngestEntry& entry : events.entries) {
                        checksum += entry.value.d;
                      }
                      n += static_cast<int64_t>(events.events.size());
                      return true;
                    });
      const double secs = Since(start);
      if (!s.ok()) {
        std::fprintf(stderr, "ReadEvents: %s\n", s.ToString().c_str());
        return 1;
      }
      if (replayed != 0 && n != replayed) {
        std::fprintf(stderr, "replays disagree: %lld vs %lld events\n",
                     static_cast<long long>(n),
                     static_cast<long long>(replayed));
        return 1;
      }
      replayed = n;
      Replay& r = kinds[kind];
      std::printf("replay as %-18s %lld events in %.2f s (sum %.6g)\n", r.name,
                  static_cast<long long>(n), secs, checksum);
      if (n / secs > r.rate) {
        r.rate = n / secs;
        r.server_us = (server.CpuSeconds() - server_cpu) * 1e6 / n;
        r.client_us =
            (bench::RusageCpuSeconds(RUSAGE_SELF) - client_cpu) * 1e6 / n;
      }
    }
  }
  std::fflush(stdout);
  const auto print_replays = [&](double readseq) {
    for (const Replay& r : kinds) {
      std::printf(
          "ReadEvents replay, %-18s %10.0f events/s | rawfeatd %.2f us, "
          "client %.2f us CPU per event",
          r.name, r.rate, r.server_us, r.client_us);
      if (readseq > 0) {
        std::printf(" | db_bench readseq %10.0f ops/s | ratio %.2fx", readseq,
                    r.rate / readseq);
      }
      std::printf("\n");
    }
  };
  if (absl::GetFlag(FLAGS_replay_only)) {
    print_replays(-1);
    return 0;
  }

  // (b) Copy a slice into a second server.
  std::filesystem::create_directories(work + "/copy");
  LocalServer target(absl::GetFlag(FLAGS_rawfeatd), work + "/copy-data",
                     work + "/copy", {});
  const int64_t copy_n = std::min(absl::GetFlag(FLAGS_copy_events), replayed);
  double copy_secs = -1;
  if (target.ok()) {
    copy_secs = Timed(absl::StrCat(cli, " copy --from ", server.address(),
                                   " --to ", target.address(),
                                   " --definitions --max-events ", copy_n,
                                   " > /dev/null"));
  }
  target.Terminate();

  // (c) A daily backfill over the last N days, shared pass vs separate.
  const absl::CivilDay last_day = absl::ToCivilDay(
      absl::FromUnixMicros(bench::kEnd) - absl::Hours(24), absl::UTCTimeZone());
  const absl::CivilDay first_day =
      last_day - (absl::GetFlag(FLAGS_backfill_days) - 1);
  const std::string backfill = absl::StrCat(
      cli, " --server ", server.address(), " backfill --view bench --from ",
      absl::FormatCivilTime(first_day), " --to ",
      absl::FormatCivilTime(last_day), " --watermark ", watermark);
  const double shared_secs =
      Timed(absl::StrCat(backfill, " --out ", work, "/bf-shared > /dev/null"));
  const double separate_secs =
      Timed(absl::StrCat(backfill, " --separate-passes --out ", work,
                         "/bf-separate > /dev/null"));
  const bool same = std::system(absl::StrCat("diff -r -q ", work, "/bf-shared ",
                                             work, "/bf-separate > /dev/null")
                                    .c_str()) == 0;
  server.Terminate();

  // db_bench on the same number of keys.
  double readseq = -1;
  if (!absl::GetFlag(FLAGS_db_bench).empty()) {
    readseq = bench::RunDbBench(
        absl::GetFlag(FLAGS_db_bench),
        absl::StrCat("--benchmarks=fillseq,readseq --num=", replayed,
                     " --value_size=100 --threads=1 --compression_type=lz4 "
                     "--db=",
                     work, "/dbbench"),
        "readseq");
  }

  const int n_days = absl::GetFlag(FLAGS_backfill_days);
  std::printf("\n");
  print_replays(readseq);
  std::printf("copy (%lld events) %10.0f events/s (%.1f s)\n",
              static_cast<long long>(copy_n),
              copy_secs > 0 ? copy_n / copy_secs : 0.0, copy_secs);
  std::printf("backfill %d days    shared pass %.1f s (%.2f s/snapshot) | "
              "separate %.1f s (%.2f s/snapshot) | %.1fx | files identical: "
              "%s\n",
              n_days, shared_secs, shared_secs / n_days, separate_secs,
              separate_secs / n_days,
              shared_secs > 0 ? separate_secs / shared_secs : 0.0,
              same ? "yes" : "NO");
  return same ? 0 : 1;
}

}  // namespace
}  // namespace rawfeat

int main(int argc, char** argv) {
  return rawfeat::bench::RunTool(argc, argv, rawfeat::Main);
}
