// Erasure under load: how long `Erase` of one entity with N events takes,
// and what it does to ingest running at the same time.
//
// Starts a durable rawfeatd, loads N events of one entity ("heavy") plus
// the bench workload's events of other entities, then runs the same ingest
// (2 clients, unary batches of 1,000 events of other entities) twice: alone,
// and with an Erase of "heavy" started half a second in. Prints the
// erasure's time and, for both runs, ingest events/s and the slowest and
// p99 batch calls -- a stall shows as a slow call.
//
//   erase_load --rawfeatd build/server/rawfeatd [--heavy 1000000]
//              [--ingest 300000]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "bench/scratch_dir.h"
#include "bench/workload.h"
#include "client/client.h"
#include "client/local_server.h"
#include "server/common/time_util.h"

ABSL_FLAG(std::string, rawfeatd, "build/server/rawfeatd", "rawfeatd binary");
ABSL_FLAG(int64_t, heavy, 1000000, "events of the erased entity");
ABSL_FLAG(int64_t, ingest, 300000,
          "events of other entities ingested in each timed run");
ABSL_FLAG(std::string, work_dir, "", "scratch directory (default: a temp dir)");

namespace rawfeat {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

struct IngestRun {
  double seconds = 0;
  double events_per_sec = 0;
  double max_call_ms = 0;
  double p99_call_ms = 0;
  bool ok = true;
};

// Ingests workload events [first, first + count) from 2 clients in unary
// batches of 1,000, timing every call. `started` runs once the clock runs.
IngestRun Ingest(const std::string& address, const bench::Workload& w,
                 int64_t first, int64_t count,
                 const std::function<void()>& started) {
  constexpr int64_t kBatch = 1000;
  std::atomic<int64_t> next{first};
  std::mutex mu;
  std::vector<double> calls_ms;
  IngestRun run;
  const auto start = Clock::now();
  std::thread side([&] { started(); });
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      Client client(address);
      std::vector<double> mine;
      while (true) {
        const int64_t begin = next.fetch_add(kBatch);
        if (begin >= first + count) break;
        v1::IngestRequest req;
        w.FillBatch(begin, std::min(first + count, begin + kBatch), &req);
        const auto t0 = Clock::now();
        auto r = client.Ingest(req);
        mine.push_back(1000 * Seconds(Clock::now() - t0));
        if (!r.ok()) {
          std::fprintf(stderr, "ingest: %s\n", r.status().ToString().c_str());
          run.ok = false;
          break;
        }
      }
      std::lock_guard<std::mutex> l(mu);
      calls_ms.insert(calls_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  run.seconds = Seconds(Clock::now() - start);
  side.join();
  std::sort(calls_ms.begin(), calls_ms.end());
  run.events_per_sec = count / run.seconds;
  if (!calls_ms.empty()) {
    run.max_call_ms = calls_ms.back();
    run.p99_call_ms = calls_ms[calls_ms.size() * 99 / 100];
  }
  return run;
}

int Main() {
  const int64_t heavy = absl::GetFlag(FLAGS_heavy);
  const int64_t ingest = absl::GetFlag(FLAGS_ingest);
  ScratchDir scratch(absl::GetFlag(FLAGS_work_dir), "erase_load");
  const std::string work = scratch.path();
  { std::ofstream(work + "/bench.textproto") << bench::kDefinitions; }
  bench::RemoveEarlierData(work);  // an empty store every run
  LocalServer server(absl::GetFlag(FLAGS_rawfeatd), work + "/data", work,
                     {"--schemas=" + work});
  if (!server.ok()) {
    std::fprintf(stderr, "rawfeatd did not start\n");
    return 1;
  }
  // The heavy entity: one event a minute back from the workload's end.
  const auto load_start = Clock::now();
  const bool loaded = bench::LoadEvents(
      server.address(), heavy,
      [](int64_t begin, int64_t end, v1::IngestRequest* r) {
        r->set_stream("orders");
        for (int64_t i = begin; i < end; ++i) {
          v1::Event* e = r->add_events();
          e->set_event_id(absl::StrCat("h", i));
          e->set_entity("heavy");
          *e->mutable_event_time() =
              MicrosToTimestamp(bench::kEnd - i * 60 * 1000000LL);
          auto& f = *e->mutable_fields();
          f["amount"].set_double_value(static_cast<double>(i % 1000) / 4);
          f["quantity"].set_int64_value(i % 7);
          f["category"].set_string_value("books");
        }
      });
  if (!loaded) return 1;
  const bench::Workload w(3 * ingest, 10000, 90, 1.1);
  if (!bench::LoadEvents(server.address(), ingest,
                         [&](int64_t begin, int64_t end, v1::IngestRequest* r) {
                           w.FillBatch(begin, end, r);
                         })) {
    return 1;
  }
  std::printf("loaded %lld events of 'heavy' and %lld others in %.1f s\n",
              static_cast<long long>(heavy), static_cast<long long>(ingest),
              Seconds(Clock::now() - load_start));

  const IngestRun alone = Ingest(server.address(), w, ingest, ingest, [] {});
  double erase_s = 0;
  uint64_t erased = 0;
  bool erase_ok = true;
  const IngestRun during = Ingest(server.address(), w, 2 * ingest, ingest, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    Client client(server.address());
    const auto t0 = Clock::now();
    auto r = client.Erase("orders", "heavy");
    erase_s = Seconds(Clock::now() - t0);
    if (!r.ok()) {
      std::fprintf(stderr, "erase: %s\n", r.status().ToString().c_str());
      erase_ok = false;
      return;
    }
    erased = r->events();
  });
  if (!alone.ok || !during.ok || !erase_ok) return 1;
  std::printf("erase of one entity: %llu events in %.2f s\n",
              static_cast<unsigned long long>(erased), erase_s);
  std::printf("%-24s %10s %9s %12s %12s\n", "ingest (durable)", "events/s",
              "seconds", "p99 call ms", "max call ms");
  for (const auto& [name, run] : {std::make_pair("alone", alone),
                                  std::make_pair("during the erase", during)}) {
    std::printf("%-24s %10.0f %9.2f %12.1f %12.1f\n", name, run.events_per_sec,
                run.seconds, run.p99_call_ms, run.max_call_ms);
  }
  std::printf("ingest during the erase: %.0f%% of alone\n",
              100 * during.events_per_sec / alone.events_per_sec);
  return 0;
}

}  // namespace
}  // namespace rawfeat

int main(int argc, char** argv) {
  return rawfeat::bench::RunTool(argc, argv, rawfeat::Main);
}
