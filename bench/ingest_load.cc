// End-to-end ingest load tool.
//
// Starts rawfeatd on a loopback port with a temp data dir, streams N events
// (about 100 bytes of fields each, over E entities, in batches of B) through
// IngestStream from C concurrent clients, and reports events/s for
// --sync=false and for the default durable mode, plus the server's peak RSS.
// In the same run it runs RocksDB's db_bench fillrandom with the same count,
// 100-byte values and batch size, and prints our rate as a ratio of its.
// The clients send batches encoded before the clock starts. Beside each
// mode it prints the CPU per event of the server and of the clients, and
// the rate two cores allow for the floor's calls (rawfeat_echo: parsed,
// nothing stored) plus db_bench's CPU for one write per event.
//
//   ingest_load --rawfeatd build/server/rawfeatd [--events 2000000]
//               [--entities 10000] [--batch 1000] [--clients 2]
//               [--csv_rows 1000000 [--jsonl] --rawfeat_cli
//               build/client/rawfeat]

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/scratch_dir.h"
#include "bench/workload.h"
#include "client/client.h"
#include "client/local_server.h"
#include "server/common/time_util.h"

ABSL_FLAG(std::string, rawfeatd, "build/server/rawfeatd", "rawfeatd binary");
ABSL_FLAG(std::string, db_bench, "/usr/bin/db_bench",
          "RocksDB db_bench (empty: skip the reference run)");
ABSL_FLAG(int64_t, events, 2000000, "events to ingest (and db_bench --num)");
ABSL_FLAG(int, entities, 10000, "distinct entities");
ABSL_FLAG(int, batch, 1000, "events per batch (and db_bench --batch_size)");
ABSL_FLAG(int, clients, 2, "concurrent IngestStream clients");
ABSL_FLAG(std::string, modes, "nosync,sync", "which of nosync,sync to run");
ABSL_FLAG(bool, secure, false,
          "also run each mode with TLS and a bearer token (an --auth_file), "
          "alternating with plain runs, and report the overhead");
ABSL_FLAG(int, secure_rounds, 3, "with --secure: plain/secure pairs per mode");
ABSL_FLAG(int, metrics_rounds, 0,
          "pairs of runs without and with --metrics_listen per mode (0: "
          "none): the cost of recording metrics");
ABSL_FLAG(std::string, compare_rawfeatd, "",
          "another rawfeatd binary (e.g. the build before a change): runs "
          "of --rawfeatd and of it alternate, --compare_rounds pairs per "
          "mode, and the medians are compared");
ABSL_FLAG(int, compare_rounds, 3, "pairs of runs for --compare_rawfeatd");
ABSL_FLAG(std::string, work_dir, "", "scratch directory (default: a temp dir)");
ABSL_FLAG(std::string, server_flags, "",
          "extra rawfeatd flags, comma-separated (e.g. --seal_min_events=256)");
ABSL_FLAG(int64_t, csv_rows, 0,
          "also time `rawfeat ingest` of a CSV of this many rows (RFC 3339 "
          "times, 9 columns) into a durable server, against db_bench "
          "fillrandom (sync) with the same count and batch (0: skip)");
ABSL_FLAG(bool, jsonl, false,
          "with --csv_rows, also time `rawfeat ingest` of the same rows as "
          "JSON Lines");
ABSL_FLAG(int, csv_in_flight, 1,
          "`rawfeat ingest --in-flight`: batches the CLI sends at once");
ABSL_FLAG(std::string, rawfeat_cli, "build/client/rawfeat",
          "the rawfeat CLI binary (for --csv_rows)");
ABSL_FLAG(std::string, echo, "build/bench/rawfeat_echo",
          "the transport's floor: the same batches, clients and IngestStream "
          "calls into a gRPC server that only parses them (empty: skip)");

namespace rawfeat {
namespace {

constexpr char kSchema[] = R"(
streams {
  name: "orders"
  entity_field: "user_id"
  time_field: "order_time"
  fields { name: "amount"   type: DOUBLE required: true }
  fields { name: "quantity" type: INT64  required: true }
  fields { name: "category" type: STRING required: true }
  fields { name: "coupon"   type: STRING }
  fields { name: "note"     type: STRING }
  fields { name: "is_gift"  type: BOOL }
}
)";

// Pre-built batches, so the load generator costs little while timing.
std::vector<v1::IngestRequest> MakeBatches(int64_t n, int entities, int batch) {
  std::mt19937_64 rng(42);
  const int64_t t0 = 1795478400LL * 1000000;
  std::vector<v1::IngestRequest> batches;
  static const char* kCategories[] = {"books",  "toys",        "food",
                                      "garden", "electronics", "fashion"};
  for (int64_t i = 0; i < n; i += batch) {
    v1::IngestRequest req;
    req.set_stream("orders");
    for (int64_t j = i; j < std::min(n, i + batch); ++j) {
      v1::Event* e = req.add_events();
      e->set_event_id(absl::StrCat("ev-", j));
      e->set_entity(absl::StrCat("user-", rng() % entities));
      *e->mutable_event_time() = MicrosToTimestamp(
          t0 - static_cast<int64_t>(rng() % (90LL * 86400000000LL)));
      auto& f = *e->mutable_fields();
      f["amount"].set_double_value(static_cast<double>(rng() % 100000) / 100);
      f["quantity"].set_int64_value(static_cast<int64_t>(rng() % 10));
      f["category"].set_string_value(kCategories[rng() % 6]);
      f["coupon"].set_string_value(
          absl::StrFormat("CPN-%012d", rng() % 1000000));
      f["note"].set_string_value(absl::StrFormat(
          "gift wrap %08x, leave at door %08x, %010d",
          static_cast<unsigned>(rng()), static_cast<unsigned>(rng()),
          static_cast<int>(rng() % 1000000000)));
      f["is_gift"].set_bool_value(rng() % 2);
    }
    batches.push_back(std::move(req));
  }
  return batches;
}

struct RunResult {
  double events_per_sec = 0;
  double seconds = 0;
  long long peak_rss = 0;
  // The server's CPU time (user + system) while the load ran, per event.
  double server_cpu_us = 0;
  // The CLI's, per row (`rawfeat ingest` of a CSV only).
  double cli_cpu_us = 0;
  // This tool's own (its client threads) while the load ran, per event.
  double client_cpu_us = 0;
  int64_t accepted = 0;
  uint64_t disk_bytes = 0;
};

// Writes `n` orders rows as `rawfeat ingest` reads them: CSV (a header,
// then event_id, user_id, an RFC 3339 order_time and six fields per row),
// or the same rows as JSON Lines objects.
bool WriteOrders(const std::string& path, int64_t n, int entities, bool jsonl) {
  std::ofstream out(path);
  if (!jsonl) {
    out << "event_id,user_id,order_time,amount,quantity,category,coupon,"
           "note,is_gift\n";
  }
  std::mt19937_64 rng(7);
  const int64_t t0 = 1795478400LL * 1000000;
  static const char* kCategories[] = {"books",  "toys",        "food",
                                      "garden", "electronics", "fashion"};
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = t0 - static_cast<int64_t>(rng() % (90LL * 86400000000LL));
    const std::string user = absl::StrCat("user-", rng() % entities);
    const double amount = static_cast<double>(rng() % 100000) / 100;
    const uint64_t quantity = rng() % 10;
    const char* category = kCategories[rng() % 6];
    const std::string coupon =
        absl::StrFormat("CPN-%012d", static_cast<int>(rng() % 1000000));
    const unsigned a = static_cast<unsigned>(rng());
    const unsigned b = static_cast<unsigned>(rng());
    const std::string note =
        absl::StrFormat("gift wrap %08x leave at door %08x %010d", a, b,
                        static_cast<int>(rng() % 1000000000));
    const bool gift = rng() % 2 != 0;
    if (jsonl) {
      out << "{\"event_id\":\"ev-" << i << "\",\"user_id\":\"" << user
          << "\",\"order_time\":\"" << FormatMicros(t)
          << "\",\"amount\":" << amount << ",\"quantity\":" << quantity
          << ",\"category\":\"" << category << "\",\"coupon\":\"" << coupon
          << "\",\"note\":\"" << note
          << "\",\"is_gift\":" << (gift ? "true" : "false") << "}\n";
    } else {
      out << "ev-" << i << "," << user << "," << FormatMicros(t) << ","
          << amount << "," << quantity << "," << category << "," << coupon
          << "," << note << "," << (gift ? "true" : "false") << "\n";
    }
  }
  return static_cast<bool>(out);
}

// `rawfeat ingest` of `csv` (CSV or JSON Lines, by its extension) into a
// fresh durable server; rows/s.
bool RunCsvIngest(const std::string& csv, int64_t rows, const std::string& work,
                  RunResult* out) {
  const std::string dir = work + "/rawfeat-csv";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  { std::ofstream(dir + "/orders.textproto") << kSchema; }
  LocalServer server(absl::GetFlag(FLAGS_rawfeatd), dir + "/data", dir,
                     {"--schemas=" + dir});
  if (!server.ok()) {
    std::fprintf(stderr, "rawfeatd did not start\n");
    return false;
  }
  const std::string command = absl::StrCat(
      absl::GetFlag(FLAGS_rawfeat_cli), " --server ", server.address(),
      " ingest --stream orders --batch-size ", absl::GetFlag(FLAGS_batch),
      " --in-flight ", absl::GetFlag(FLAGS_csv_in_flight), " ", csv, " > ",
      dir, "/cli.out 2>&1");
  const double cpu_start = server.CpuSeconds();
  // The CLI (and its shell) are the only children reaped meanwhile.
  const double cli_start = bench::RusageCpuSeconds(RUSAGE_CHILDREN);
  const auto start = std::chrono::steady_clock::now();
  const int rc = std::system(command.c_str());
  out->seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  out->server_cpu_us = (server.CpuSeconds() - cpu_start) * 1e6 / rows;
  out->cli_cpu_us =
      (bench::RusageCpuSeconds(RUSAGE_CHILDREN) - cli_start) * 1e6 / rows;
  if (rc != 0) {
    std::fprintf(stderr, "%s failed (%d)\n", command.c_str(), rc);
    return false;
  }
  out->accepted = rows;
  out->events_per_sec = rows / out->seconds;
  out->peak_rss = server.PeakRssBytes();
  server.Terminate();
  return true;
}

// `secure`: TLS and a token (nullptr: plain text, no auth). `binary`:
// rawfeatd, or the echo floor (which ignores rawfeatd's flags).
bool RunRawfeat(const std::vector<v1::IngestRequest>& batches, bool sync,
                const std::string& work, const bench::ServerVariant* secure,
                RunResult* out,
                const std::string& binary = absl::GetFlag(FLAGS_rawfeatd)) {
  const std::string dir =
      absl::StrCat(work, "/rawfeat-", sync ? "sync" : "nosync");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  { std::ofstream(dir + "/orders.textproto") << kSchema; }
  std::vector<std::string> flags = {"--schemas=" + dir,
                                    absl::StrCat("--sync=", sync)};
  if (binary != absl::GetFlag(FLAGS_echo)) {
    for (absl::string_view f : absl::StrSplit(
             absl::GetFlag(FLAGS_server_flags), ',', absl::SkipEmpty())) {
      flags.emplace_back(f);
    }
  }
  ClientOptions options;
  if (secure != nullptr) {
    flags.insert(flags.end(), secure->server_flags.begin(),
                 secure->server_flags.end());
    options = secure->client;
  }
  LocalServer server(binary, dir + "/data", dir, flags);
  if (!server.ok()) {
    std::fprintf(stderr, "%s did not start\n", binary.c_str());
    return false;
  }
  const int clients = absl::GetFlag(FLAGS_clients);
  // The batches' wire bytes, made before the clock starts: while timed the
  // load generator only hands bytes to gRPC (serializing events with field
  // maps cost it 2.7 us of CPU per event, on the cores the server needs).
  std::vector<std::string> work_batches(batches.size());
  for (size_t i = 0; i < batches.size(); ++i) {
    batches[i].SerializeToString(&work_batches[i]);
  }
  std::atomic<size_t> next{0};
  std::atomic<int64_t> accepted{0};
  std::atomic<bool> failed{false};
  const double cpu_start = server.CpuSeconds();
  const double client_cpu_start = bench::RusageCpuSeconds(RUSAGE_SELF);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      Client client(server.address(), options);
      auto r = client.IngestStreamEncoded([&](std::string* req) {
        const size_t i = next++;
        if (i >= work_batches.size()) return false;
        req->swap(work_batches[i]);
        return true;
      });
      if (!r.ok()) {
        std::fprintf(stderr, "ingest failed: %s\n",
                     r.status().ToString().c_str());
        failed = true;
        return;
      }
      accepted += r->accepted();
    });
  }
  for (auto& t : threads) t.join();
  out->seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  out->accepted = accepted;
  out->events_per_sec = accepted / out->seconds;
  out->server_cpu_us =
      accepted > 0 ? (server.CpuSeconds() - cpu_start) * 1e6 / accepted : 0;
  out->client_cpu_us =
      accepted > 0 ? (bench::RusageCpuSeconds(RUSAGE_SELF) - client_cpu_start) *
                         1e6 / accepted
                   : 0;
  out->peak_rss = server.PeakRssBytes();
  Client client(server.address(), options);
  auto st = client.GetStatus();
  if (st.ok()) out->disk_bytes = st->disk_bytes();
  server.Terminate();
  return !failed;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// A db_bench fillrandom run: ops/s (-1: it did not run) and its CPU time
// (user + system, background threads included) per op.
struct DbBenchResult {
  double ops_per_sec = -1;
  double cpu_us = 0;
};

DbBenchResult RunDbBench(int64_t n, int batch, bool sync,
                         const std::string& work) {
  DbBenchResult r;
  if (absl::GetFlag(FLAGS_db_bench).empty()) return r;
  const std::string dir =
      absl::StrCat(work, "/dbbench-", sync ? "sync" : "nosync");
  std::filesystem::remove_all(dir);
  // Every child this tool started before is reaped by now (LocalServer
  // waits for rawfeatd), so the children's CPU grows by db_bench's alone.
  const double cpu_start = bench::RusageCpuSeconds(RUSAGE_CHILDREN);
  r.ops_per_sec = bench::RunDbBench(
      absl::GetFlag(FLAGS_db_bench),
      absl::StrCat("--benchmarks=fillrandom --num=", n,
                   " --value_size=100 --batch_size=", batch,
                   " --sync=", sync ? 1 : 0,
                   " --threads=1 --compression_type=lz4 --db=", dir),
      "fillrandom");
  r.cpu_us = (bench::RusageCpuSeconds(RUSAGE_CHILDREN) - cpu_start) * 1e6 / n;
  return r;
}

// "db_bench fillrandom N ops/s, CPU C us/op | ratio R" for a rate against
// `db`, or a word that it did not run.
std::string AgainstDbBench(double events_per_sec, const DbBenchResult& db) {
  if (db.ops_per_sec <= 0) {
    return "db_bench not run (--db_bench empty or failed): no ratio";
  }
  return absl::StrFormat(
      "db_bench fillrandom %9.0f ops/s, CPU %.1f us/op | ratio %.2fx",
      db.ops_per_sec, db.cpu_us, events_per_sec / db.ops_per_sec);
}

int Main() {
  const int64_t n = absl::GetFlag(FLAGS_events);
  const int batch = absl::GetFlag(FLAGS_batch);
  const ScratchDir scratch(absl::GetFlag(FLAGS_work_dir), "bench");
  const std::string& work = scratch.path();
  std::fprintf(stderr, "generating %lld events over %d entities...\n",
               static_cast<long long>(n), absl::GetFlag(FLAGS_entities));
  const auto batches = MakeBatches(n, absl::GetFlag(FLAGS_entities), batch);
  size_t field_bytes = 0;
  for (const auto& [k, v] : batches[0].events(0).fields()) {
    field_bytes += v.ByteSizeLong();
  }
  std::printf(
      "ingest_load: %lld events, %d entities, batch %d, %d clients, "
      "~%zu bytes of fields per event\n",
      static_cast<long long>(n), absl::GetFlag(FLAGS_entities), batch,
      absl::GetFlag(FLAGS_clients), field_bytes);
  const std::vector<std::string> modes =
      absl::StrSplit(absl::GetFlag(FLAGS_modes), ',');
  bench::ServerVariant secure;
  if (absl::GetFlag(FLAGS_secure)) {
    const std::string tls_dir = work + "/tls";
    std::filesystem::create_directories(tls_dir);
    if (!bench::MakeSecureSetup(tls_dir, &secure)) return 1;
  }
  // The floor's CPU per event (its server and clients), once measured.
  double floor_cpu_us = 0;
  for (const bool sync : {false, true}) {
    if (std::find(modes.begin(), modes.end(), sync ? "sync" : "nosync") ==
        modes.end()) {
      continue;
    }
    RunResult r;
    if (!RunRawfeat(batches, sync, work, nullptr, &r)) return 1;
    const DbBenchResult db = RunDbBench(n, batch, sync, work);
    const double ref = db.ops_per_sec;
    std::printf(
        "%-7s rawfeat %9.0f events/s (%.2f s, %lld accepted, server CPU %.1f "
        "us/event, clients %.1f, peak RSS %.0f MiB, disk %.0f MiB) | %s\n",
        sync ? "sync" : "nosync", r.events_per_sec, r.seconds,
        static_cast<long long>(r.accepted), r.server_cpu_us, r.client_cpu_us,
        r.peak_rss / 1048576.0, r.disk_bytes / 1048576.0,
        AgainstDbBench(r.events_per_sec, db).c_str());
    std::fflush(stdout);
    if (!sync && !absl::GetFlag(FLAGS_echo).empty()) {
      // What the client and gRPC alone reach on this machine: the ceiling
      // of any server behind the same calls.
      RunResult f;
      if (!RunRawfeat(batches, false, work, nullptr, &f,
                      absl::GetFlag(FLAGS_echo))) {
        return 1;
      }
      std::printf(
          "%-7s floor   %9.0f events/s (%.2f s: the same calls into "
          "rawfeat_echo, parsed, nothing stored; server CPU %.1f us/event, "
          "clients %.1f) | %s | rawfeat / floor %.2fx\n",
          "nosync", f.events_per_sec, f.seconds, f.server_cpu_us,
          f.client_cpu_us, AgainstDbBench(f.events_per_sec, db).c_str(),
          f.events_per_sec > 0 ? r.events_per_sec / f.events_per_sec : 0);
      floor_cpu_us = f.server_cpu_us + f.client_cpu_us;
      std::fflush(stdout);
    }
    if (floor_cpu_us > 0 && ref > 0) {
      // A server that did nothing but what db_bench does for each event,
      // behind these calls, would still need the transport's CPU (the
      // floor's server and clients) plus db_bench's own; the machine's
      // cores bound its rate. CPU-bound when that is below db_bench's.
      const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
      const double cpu_us = floor_cpu_us + db.cpu_us;
      const double bound = cores * 1e6 / cpu_us;
      std::printf(
          "%-7s bound   %9.0f events/s at most on %u cores for the floor's "
          "calls plus one db_bench write per event (%.1f + %.1f us of CPU) | "
          "ratio %.2fx; rawfeat uses %.1f us (server + clients)\n",
          sync ? "sync" : "nosync", bound, cores, floor_cpu_us, db.cpu_us,
          bound / ref, r.server_cpu_us + r.client_cpu_us);
      std::fflush(stdout);
    }
    // Plain runs and runs with `variant` alternate, so drift in the
    // machine's speed hits both; the overhead is the ratio of the medians.
    auto compare = [&](const char* name, const bench::ServerVariant& variant,
                       int rounds) {
      std::vector<double> plain, with, plain_cpu, with_cpu;
      for (int round = 0; round < rounds; ++round) {
        for (const bool on : {false, true}) {
          RunResult x;
          const std::string binary = on && !variant.binary.empty()
                                         ? variant.binary
                                         : absl::GetFlag(FLAGS_rawfeatd);
          if (!RunRawfeat(batches, sync, work, on ? &variant : nullptr, &x,
                          binary)) {
            return false;
          }
          (on ? with : plain).push_back(x.events_per_sec);
          (on ? with_cpu : plain_cpu).push_back(x.server_cpu_us);
          std::printf(
              "%-7s round %d %-10s %9.0f events/s, server CPU %.1f "
              "us/event, peak RSS %.0f MiB\n",
              sync ? "sync" : "nosync", round + 1, on ? name : "plain",
              x.events_per_sec, x.server_cpu_us, x.peak_rss / 1048576.0);
          std::fflush(stdout);
        }
      }
      const double p = Median(plain), t = Median(with);
      std::printf(
          "%-7s median plain %9.0f events/s, %.1f us/event | %s %9.0f "
          "events/s, %.1f us/event | overhead %.1f%%\n",
          sync ? "sync" : "nosync", p, Median(plain_cpu), name, t,
          Median(with_cpu), 100.0 * (p - t) / p);
      std::fflush(stdout);
      return true;
    };
    if (sync && absl::GetFlag(FLAGS_csv_rows) > 0) {
      const int64_t rows = absl::GetFlag(FLAGS_csv_rows);
      for (const bool jsonl : {false, true}) {
        if (jsonl && !absl::GetFlag(FLAGS_jsonl)) break;
        const std::string file =
            work + (jsonl ? "/orders.jsonl" : "/orders.csv");
        if (!WriteOrders(file, rows, absl::GetFlag(FLAGS_entities), jsonl)) {
          return 1;
        }
        RunResult c;
        if (!RunCsvIngest(file, rows, work, &c)) return 1;
        const DbBenchResult cdb = RunDbBench(rows, batch, true, work);
        std::printf(
            "%s rawfeat ingest %9.0f rows/s (%.2f s, %lld rows, %.0f MiB "
            "%s, %d in flight, server CPU %.1f us/row, CLI CPU %.1f us/row) "
            "| %s\n",
            jsonl ? "jsonl  " : "csv    ", c.events_per_sec, c.seconds,
            static_cast<long long>(rows),
            std::filesystem::file_size(file) / 1048576.0,
            jsonl ? "JSON Lines" : "CSV", absl::GetFlag(FLAGS_csv_in_flight),
            c.server_cpu_us, c.cli_cpu_us,
            AgainstDbBench(c.events_per_sec, cdb).c_str());
        std::fflush(stdout);
        std::filesystem::remove(file);
      }
    }
    if (absl::GetFlag(FLAGS_secure) &&
        !compare("TLS+token", secure, absl::GetFlag(FLAGS_secure_rounds))) {
      return 1;
    }
    if (!absl::GetFlag(FLAGS_compare_rawfeatd).empty()) {
      // "plain" is --rawfeatd; the overhead is the other build's.
      bench::ServerVariant other;
      other.binary = absl::GetFlag(FLAGS_compare_rawfeatd);
      if (!compare("other", other, absl::GetFlag(FLAGS_compare_rounds))) {
        return 1;
      }
    }
    if (absl::GetFlag(FLAGS_metrics_rounds) > 0) {
      bench::ServerVariant metrics;
      metrics.server_flags = {"--metrics_listen=127.0.0.1:0"};
      if (!compare("metrics", metrics, absl::GetFlag(FLAGS_metrics_rounds))) {
        return 1;
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace rawfeat

int main(int argc, char** argv) {
  return rawfeat::bench::RunTool(argc, argv, rawfeat::Main);
}
