// End-to-end GetFeatures load tool.
//
// Loads a workload into a fresh rawfeatd (E entities with Zipf-skewed
// activity, N `orders` events over D days, a view of 8 features over
// 1h/1d/7d/30d/lifetime windows), then drives GetFeatures from closed-loop
// clients on loopback and reports p50/p99/p99.9 latency and QPS for 1-entity
// and 100-entity requests, for median entities and for the heaviest 1%. In
// the same run it starts redis-server on a loopback port, stores one
// precomputed 8-field row per entity, and measures HGETALL with the same
// client concurrency, printing our latency as a ratio of Redis's.
// A last scenario measures the floor of both: GetFeatures of an unknown
// view (NOT_FOUND after one lookup) against Redis PING. The transport's
// floor is measured too: bench/rawfeat_echo, built from the same libgrpc++,
// answers the median scenarios' requests (1 and 100 entities) with real
// answers of their size and computes nothing, measured in turns with those
// scenarios (--floor_rounds rounds each, so both see the same minutes of a
// noisy machine); every scenario is printed as a ratio of the floor of its
// size (`x floor` columns). Beside each latency, `cpu us` is the server's
// CPU time per request (user + system, from /proc; rawfeatd's background
// work included): it varies far less between runs on a shared machine
// than latency does.
// Every phase is bounded in request count and in time.
//
//   features_load --rawfeatd build/server/rawfeatd [--events 10000000]

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/scratch_dir.h"
#include "bench/workload.h"
#include "bench/workload_flags.h"
#include "client/client.h"
#include "client/local_server.h"
#include "google/protobuf/arena.h"
#include "server/common/stack_arena.h"
#include "server/common/time_util.h"

ABSL_FLAG(std::string, redis_server, "/usr/bin/redis-server",
          "redis-server binary (empty: skip the reference)");
ABSL_FLAG(int, clients, 2, "closed-loop client threads (per side)");
ABSL_FLAG(int, requests, 20000, "most requests per scenario (all clients)");
ABSL_FLAG(double, seconds, 10, "most seconds per scenario");
ABSL_FLAG(std::string, scenarios, "0,1,2,3,4,5",
          "which scenarios to run (see the table)");
ABSL_FLAG(std::string, server_flags, "",
          "extra rawfeatd flags, comma-separated (e.g. --block_cache_mb=1024)");
ABSL_FLAG(int, secure_rounds, 0,
          "after the scenarios, restart rawfeatd on the same data this many "
          "times in plain text and with TLS + a bearer token (alternating) "
          "and compare the median-entity and warm heavy-entity scenarios "
          "(0: skip)");
ABSL_FLAG(std::string, echo, "build/bench/rawfeat_echo",
          "the transport's floor (the floor columns and --secure_rounds): a "
          "gRPC server that answers GetFeatures with a canned response "
          "(empty: skip)");
ABSL_FLAG(int, floor_rounds, 5,
          "the median scenarios (1 and 100 entities) and the echo floor of "
          "their answers are measured in turns, this many rounds each, "
          "within the --seconds and --requests bounds");
ABSL_FLAG(std::string, secure_mode, "tls+token",
          "what --secure_rounds compares with plain text: tls+token, tls "
          "(no --auth_file), token (an --auth_file, no TLS), metrics "
          "(--metrics_listen on: the cost of recording metrics) or binary "
          "(--compare_rawfeatd instead of --rawfeatd: another build)");
ABSL_FLAG(std::string, compare_rawfeatd, "",
          "with --secure_mode=binary: the other rawfeatd binary (e.g. the "
          "build before a change)");
ABSL_FLAG(int64_t, storm_events, 500000,
          "events ingested alone, then again while heavy entities are looked "
          "up, for new events of the last day and for late ones (0: skip)");
ABSL_FLAG(int, storm_rounds, 3,
          "alone / with-lookups pairs per storm kind; the ratio printed is "
          "the median of the pairs' (one pair moves by tens of percent on a "
          "shared machine)");
ABSL_FLAG(double, warmup_seconds, 120,
          "most seconds spent tiling the heavy entities before warm runs");

namespace rawfeat {
namespace {

using Clock = std::chrono::steady_clock;
using bench::Entity;
using bench::kEnd;

struct Stats {
  double p50 = 0, p99 = 0, p999 = 0, qps = 0;
  int64_t n = 0;
  // The server's CPU time (user + system) per request, background work
  // included (0: not measured).
  double cpu_us = 0;
  // This tool's CPU time per request (its clients: building requests,
  // gRPC, parsing answers), and the machine's cores busy on average (all
  // processes) while the scenario ran.
  double client_us = 0;
  double busy = 0;
};

// Where the machine's CPU went over an interval: all cores (from
// /proc/stat), rawfeatd's and this tool's own (its load and lookup
// clients), in cores busy on average.
class CpuMeter {
 public:
  explicit CpuMeter(const LocalServer& server) : server_(server) { Reset(); }
  void Reset() {
    start_ = Clock::now();
    MachineJiffies(&busy_, &total_);
    server_cpu_ = server_.CpuSeconds();
    self_cpu_ = SelfCpuSeconds();
  }
  struct Busy {
    double machine = 0, server = 0, tool = 0;  // cores
    double seconds = 0;
  };
  Busy Read() const {
    Busy b;
    b.seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    if (b.seconds <= 0) return b;
    uint64_t busy = 0, total = 0;
    MachineJiffies(&busy, &total);
    const double cores = std::thread::hardware_concurrency();
    if (total > total_) {
      b.machine = cores * static_cast<double>(busy - busy_) /
                  static_cast<double>(total - total_);
    }
    b.server = (server_.CpuSeconds() - server_cpu_) / b.seconds;
    b.tool = (SelfCpuSeconds() - self_cpu_) / b.seconds;
    return b;
  }

 private:
  // The "cpu" line of /proc/stat: busy = all but idle and iowait.
  static void MachineJiffies(uint64_t* busy, uint64_t* total) {
    std::ifstream in("/proc/stat");
    std::string cpu;
    uint64_t v[8] = {};
    in >> cpu >> v[0] >> v[1] >> v[2] >> v[3] >> v[4] >> v[5] >> v[6] >> v[7];
    *total = 0;
    for (uint64_t x : v) *total += x;
    *busy = *total - v[3] - v[4];
  }
  static double SelfCpuSeconds() {
    return bench::RusageCpuSeconds(RUSAGE_SELF);
  }

  const LocalServer& server_;
  Clock::time_point start_;
  uint64_t busy_ = 0, total_ = 0;
  double server_cpu_ = 0, self_cpu_ = 0;
};

using MakeCaller = std::function<std::function<bool(std::mt19937_64&)>()>;

// One closed-loop run: every call's latency (us) and how long it took.
struct Samples {
  std::vector<double> latencies;
  double seconds = 0;
};

// Runs a caller from every client thread until `max_requests` or `seconds`
// have gone by, or with `until` given, until it turns true (at most 10
// times `seconds`).
// With `rate` > 0 the clients together call `rate` times a second: each
// waits for its turn, and turns missed (a late wake-up, a slow call) are
// made up at once, up to 50 of them (a slower server sets its own pace).
Samples ClosedLoopSamples(const MakeCaller& make_caller,
                          const std::atomic<bool>* until, double seconds,
                          int64_t max_requests, double rate = 0) {
  const int clients = absl::GetFlag(FLAGS_clients);
  if (until != nullptr) max_requests = std::numeric_limits<int64_t>::max();
  const auto deadline =
      Clock::now() +
      std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(seconds * (until != nullptr ? 10 : 1)));
  std::atomic<int64_t> issued{0};
  std::vector<std::vector<double>> lat(clients);
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto call = make_caller();
      std::mt19937_64 rng(c + 7);
      const auto interval = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(rate > 0 ? clients / rate : 0));
      auto turn = Clock::now();
      while (issued++ < max_requests && Clock::now() < deadline &&
             (until == nullptr || !until->load())) {
        if (rate > 0) {
          turn = std::max(turn + interval, Clock::now() - 50 * interval);
          std::this_thread::sleep_until(turn);
        }
        const auto t0 = Clock::now();
        if (!call(rng)) return;
        lat[c].push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - t0)
                .count());
      }
    });
  }
  for (auto& th : threads) th.join();
  Samples out;
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& v : lat) {
    out.latencies.insert(out.latencies.end(), v.begin(), v.end());
  }
  return out;
}

// Percentiles and rate of `samples` (the CPU fields left 0).
Stats Summarize(Samples samples) {
  std::vector<double>& all = samples.latencies;
  Stats s;
  if (all.empty() || samples.seconds <= 0) return s;
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))];
  };
  s.p50 = pct(0.50);
  s.p99 = pct(0.99);
  s.p999 = pct(0.999);
  s.n = static_cast<int64_t>(all.size());
  s.qps = all.size() / samples.seconds;
  return s;
}

// A closed loop within the --requests and --seconds bounds (see
// ClosedLoopSamples).
Stats ClosedLoop(const MakeCaller& make_caller,
                 const std::atomic<bool>* until = nullptr, double rate = 0) {
  return Summarize(ClosedLoopSamples(make_caller, until,
                                     absl::GetFlag(FLAGS_seconds),
                                     absl::GetFlag(FLAGS_requests), rate));
}

// CPU spent over one or more measured runs: rawfeatd's (or the floor's),
// this tool's and the machine's, in core-seconds, and the runs' seconds.
struct CpuTotals {
  double server = 0, tool = 0, machine = 0, seconds = 0;

  void Add(const CpuMeter::Busy& b) {
    server += b.server * b.seconds;
    tool += b.tool * b.seconds;
    machine += b.machine * b.seconds;
    seconds += b.seconds;
  }
  // Sets the per-call CPU and busy cores of `s`, whose calls ran meanwhile.
  void ApplyTo(Stats* s) const {
    if (s->n == 0 || seconds <= 0) return;
    s->cpu_us = server * 1e6 / s->n;
    s->client_us = tool * 1e6 / s->n;
    s->busy = machine / seconds;
  }
};

// ClosedLoop's stats with the CPU `server` and this tool's clients spent
// meanwhile, and how busy the machine was.
Stats MeasuredLoop(const LocalServer& server, const MakeCaller& make_caller) {
  const CpuMeter meter(server);
  Stats s = ClosedLoop(make_caller);
  CpuTotals cpu;
  cpu.Add(meter.Read());
  cpu.ApplyTo(&s);
  return s;
}

// Two servers measured in turns within the --requests and --seconds bounds:
// `rounds` alternations of a closed loop on `a` and one on `b`, each a
// `rounds`-th of the bounds, so that both sides see the same minutes of a
// noisy machine. Each side's percentiles are over all its calls, its CPU
// per call over all its rounds.
std::pair<Stats, Stats> InterleavedLoops(const LocalServer& a,
                                         const MakeCaller& caller_a,
                                         const LocalServer& b,
                                         const MakeCaller& caller_b,
                                         int rounds) {
  rounds = std::max(1, rounds);
  const double seconds = absl::GetFlag(FLAGS_seconds) / rounds;
  const int64_t requests =
      std::max<int64_t>(1, absl::GetFlag(FLAGS_requests) / rounds);
  Samples samples[2];
  CpuTotals cpu[2];
  for (int round = 0; round < rounds; ++round) {
    for (int side = 0; side < 2; ++side) {
      const CpuMeter meter(side == 0 ? a : b);
      Samples run = ClosedLoopSamples(side == 0 ? caller_a : caller_b, nullptr,
                                      seconds, requests);
      cpu[side].Add(meter.Read());
      Samples& all = samples[side];
      all.latencies.insert(all.latencies.end(), run.latencies.begin(),
                           run.latencies.end());
      all.seconds += run.seconds;
    }
  }
  Stats out[2];
  for (int side = 0; side < 2; ++side) {
    out[side] = Summarize(std::move(samples[side]));
    cpu[side].ApplyTo(&out[side]);
  }
  return {out[0], out[1]};
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

struct Scenario {
  const char* name;
  int first_rank;
  int ranks;
  int batch;
  // The floor: a view that does not exist, so the server answers NOT_FOUND
  // after one registry lookup. What is left is gRPC and the loopback.
  bool floor = false;
};

// A closed-loop caller of GetFeatures for scenario `sc` (one client per
// thread).
MakeCaller Caller(const std::string& address, const ClientOptions& options,
                  const Scenario& sc) {
  return [address, options, sc] {
    auto client = std::make_shared<Client>(address, options);
    return [client, sc](std::mt19937_64& rng) {
      // As a serving loop would call: request and answer on one arena
      // per call, its first block on the stack.
      StackArena<16384> arena;
      auto* req =
          google::protobuf::Arena::CreateMessage<v1::GetFeaturesRequest>(
              arena.get());
      req->set_view(sc.floor ? "no_such_view" : "bench");
      *req->mutable_as_of() = MicrosToTimestamp(kEnd);
      for (int i = 0; i < sc.batch; ++i) {
        req->add_entities(Entity(sc.first_rank + rng() % sc.ranks));
      }
      auto* response =
          google::protobuf::Arena::CreateMessage<v1::GetFeaturesResponse>(
              arena.get());
      const absl::Status s = client->GetFeatures(*req, response);
      if (sc.floor && s.code() == absl::StatusCode::kNotFound) return true;
      if (!s.ok()) {
        std::fprintf(stderr, "GetFeatures: %s\n", s.ToString().c_str());
        return false;
      }
      return true;
    };
  };
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Plain text against TLS + token on the same data: rawfeatd is restarted
// for each run, alternating, and each run measures `scenarios`.
int CompareSecure(const std::string& work,
                  const std::vector<Scenario>& scenarios) {
  bench::ServerVariant secure;
  const std::string mode = absl::GetFlag(FLAGS_secure_mode);
  if (mode == "metrics") {
    secure.server_flags = {"--metrics_listen=127.0.0.1:0"};
  } else if (mode == "binary") {
    secure.binary = absl::GetFlag(FLAGS_compare_rawfeatd);
    if (secure.binary.empty()) {
      std::fprintf(stderr, "--secure_mode=binary needs --compare_rawfeatd\n");
      return 1;
    }
  } else {
    const std::string tls_dir = work + "/tls";
    std::filesystem::create_directories(tls_dir);
    if (!bench::MakeSecureSetup(tls_dir, &secure)) return 1;
  }
  if (mode != "tls+token" && mode != "metrics" && mode != "binary") {
    const bool keep_tls = mode == "tls";
    std::vector<std::string> flags;
    for (const std::string& f : secure.server_flags) {
      if (absl::StartsWith(f, "--tls_") == keep_tls) flags.push_back(f);
    }
    secure.server_flags = flags;
    if (keep_tls) {
      secure.client.token.clear();
    } else {
      secure.client.tls = false;
    }
  }
  std::printf("\nplain text vs %s, %d rounds\n", mode.c_str(),
              absl::GetFlag(FLAGS_secure_rounds));
  std::vector<std::string> base = {"--sync=false"};
  for (absl::string_view f : absl::StrSplit(absl::GetFlag(FLAGS_server_flags),
                                            ',', absl::SkipEmpty())) {
    base.emplace_back(f);
  }
  // The echo floor answers like the first scenario, with its response.
  std::vector<Scenario> measured = scenarios;
  const std::string echo = absl::GetFlag(FLAGS_echo);
  if (!echo.empty()) {
    measured.push_back(scenarios[0]);
    measured.back().name = "echo floor (1 entity answer)";
  }
  // [scenario][variant] -> p50s, p99s and server CPU over rounds.
  std::vector<std::array<std::vector<double>, 2>> p50(measured.size()),
      p99(measured.size()), cpu(measured.size());
  for (int round = 0; round < absl::GetFlag(FLAGS_secure_rounds); ++round) {
    for (const int tls : {0, 1}) {
      std::vector<std::string> flags = base;
      if (tls) {
        flags.insert(flags.end(), secure.server_flags.begin(),
                     secure.server_flags.end());
      }
      for (const bool is_echo : {false, true}) {
        if (is_echo && echo.empty()) continue;
        std::vector<std::string> server_flags = flags;
        if (is_echo) {
          server_flags.push_back("--response_file=" + work +
                                 "/echo_response.bin");
        }
        const std::string binary =
            is_echo                         ? echo
            : tls && !secure.binary.empty() ? secure.binary
                                            : absl::GetFlag(FLAGS_rawfeatd);
        LocalServer server(binary, work + "/data", work, server_flags);
        if (!server.ok()) {
          std::fprintf(stderr, "%s did not start\n",
                       is_echo ? "rawfeat_echo" : "rawfeatd");
          return 1;
        }
        const size_t first = is_echo ? scenarios.size() : 0;
        const size_t end = is_echo ? measured.size() : scenarios.size();
        // The first pass warms the restarted server's caches; the second
        // is measured.
        for (int pass = 0; pass < 2; ++pass) {
          for (size_t i = first; i < end; ++i) {
            const Stats st = MeasuredLoop(
                server, Caller(server.address(),
                               tls ? secure.client : ClientOptions(),
                               measured[i]));
            if (pass == 0) continue;
            p50[i][tls].push_back(st.p50);
            p99[i][tls].push_back(st.p99);
            cpu[i][tls].push_back(st.cpu_us);
            std::printf(
                "round %d %-10s %-30s p50 %6.0f us p99 %6.0f us cpu %5.0f "
                "us\n",
                round + 1, tls ? mode.c_str() : "plain", measured[i].name,
                st.p50, st.p99, st.cpu_us);
            std::fflush(stdout);
          }
        }
        server.Terminate();
      }
    }
  }
  std::printf(
      "\n%-30s %10s %10s %9s | %10s %10s %9s | %9s %9s %9s\n",
      "medians of rounds", "plain p50", "other p50", "overhead", "plain p99",
      "other p99", "overhead", "plain cpu", "other cpu", "overhead");
  auto over = [](double a, double b) { return a > 0 ? 100 * (b - a) / a : 0; };
  for (size_t i = 0; i < measured.size(); ++i) {
    const double a = Median(p50[i][0]), b = Median(p50[i][1]);
    const double c = Median(p99[i][0]), d = Median(p99[i][1]);
    const double e = Median(cpu[i][0]), f = Median(cpu[i][1]);
    std::printf(
        "%-30s %10.0f %10.0f %8.1f%% | %10.0f %10.0f %8.1f%% | %9.0f %9.0f "
        "%8.1f%%\n",
        measured[i].name, a, b, over(a, b), c, d, over(c, d), e, f,
        over(e, f));
  }
  return 0;
}

int Main() {
  const int entities = absl::GetFlag(FLAGS_entities);
  const ScratchDir scratch(absl::GetFlag(FLAGS_work_dir), "flbench");
  const std::string& work = scratch.path();
  const bench::Workload workload = bench::WorkloadFromFlags();
  std::printf(
      "features_load: %lld events, %d entities (hottest has %.1f%% of "
      "events), %d days, %d clients\n",
      static_cast<long long>(absl::GetFlag(FLAGS_events)), entities,
      100 * workload.zipf.Share(0), absl::GetFlag(FLAGS_days),
      absl::GetFlag(FLAGS_clients));
  const auto loaded = workload.StartLoaded(
      absl::GetFlag(FLAGS_rawfeatd), work, absl::GetFlag(FLAGS_server_flags),
      absl::GetFlag(FLAGS_settle_seconds));
  if (loaded == nullptr) return 1;
  LocalServer& server = *loaded;

  const int median_rank = entities / 2;
  const int heavy = std::max(1, entities / 100);
  // Scenario 2 runs on a cold server (heavy entities untiled); then every
  // heavy entity is looked up until its history is tiled (bounded), and the
  // rest run warm.
  const std::vector<Scenario> scenarios = {
      {"1 entity, median", median_rank - 500, 1000, 1},
      {"100 entities, median", median_rank - 500, 1000, 100},
      {"1 entity, heaviest 1%, cold", 0, heavy, 1},
      {"1 entity, heaviest 1%", 0, heavy, 1},
      {"100 entities, heaviest 1%", 0, heavy, 100},
      {"floor: unknown view (no work)", median_rank - 500, 1000, 1, true},
  };
  const std::vector<std::string> chosen =
      absl::StrSplit(absl::GetFlag(FLAGS_scenarios), ',');
  auto enabled = [&](size_t i) {
    return std::find(chosen.begin(), chosen.end(), std::to_string(i)) !=
           chosen.end();
  };
  std::vector<Stats> ours(scenarios.size());
  {
    // The median entities' blocks into the block cache (an online
    // service's working set): each looked up once, 100 a call. Heavy
    // entities get no such help: their first row is measured cold.
    Client client(server.address());
    for (int first = median_rank - 500; first < median_rank + 500;
         first += 100) {
      v1::GetFeaturesRequest req;
      req.set_view("bench");
      *req.mutable_as_of() = MicrosToTimestamp(kEnd);
      for (int k = first; k < first + 100; ++k) req.add_entities(Entity(k));
      (void)client.GetFeatures(req);
    }
  }
  const std::string echo = absl::GetFlag(FLAGS_echo);
  // The echo floor's canned answers: real responses for the median
  // entities, one of 1 entity and one of 100.
  for (const int n : {1, 100}) {
    if (echo.empty()) break;
    v1::GetFeaturesRequest req;
    req.set_view("bench");
    *req.mutable_as_of() = MicrosToTimestamp(kEnd);
    for (int i = 0; i < n; ++i) req.add_entities(Entity(median_rank + i));
    auto r = Client(server.address()).GetFeatures(req);
    if (!r.ok()) {
      std::fprintf(stderr, "GetFeatures: %s\n", r.status().ToString().c_str());
      return 1;
    }
    std::ofstream(
        n == 1 ? work + "/echo_response.bin" : work + "/echo_response_100.bin",
        std::ios::binary)
        << r->SerializeAsString();
    std::printf("echo response of %d entities: %zu bytes\n", n,
                r->ByteSizeLong());
  }
  // The transport's floor in the same run: rawfeat_echo answers each call
  // with a real answer of the median scenarios' size (1 or 100 entities),
  // with the same clients, threads and channels; nothing is computed. Each
  // is measured in turns with its scenario (InterleavedLoops).
  std::unique_ptr<LocalServer> echo_servers[2];  // answers of 1 entity, 100
  Stats floor_of[2];
  for (const int n : {1, 100}) {
    if (echo.empty()) break;
    const std::string dir = work + (n == 1 ? "/echo1" : "/echo100");
    std::filesystem::create_directories(dir);
    auto echo_server = std::make_unique<LocalServer>(
        echo, work + "/data", dir,
        std::vector<std::string>{
            "--response_file=" + work +
            (n == 1 ? "/echo_response.bin" : "/echo_response_100.bin")});
    if (!echo_server->ok()) {
      std::fprintf(stderr, "rawfeat_echo did not start\n");
      return 1;
    }
    echo_servers[n == 1 ? 0 : 1] = std::move(echo_server);
  }
  for (size_t i = 0; i < scenarios.size(); ++i) {
    if (i == 3) {
      // Warm-up: look every heavy entity up a few times (each lookup asks
      // for tiles of up to 16 of its days), then wait for the tiles.
      const auto start = Clock::now();
      const auto until = start + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(
                                         absl::GetFlag(FLAGS_warmup_seconds)));
      std::atomic<int> next{0};
      std::vector<std::thread> threads;
      for (int c = 0; c < absl::GetFlag(FLAGS_clients); ++c) {
        threads.emplace_back([&] {
          Client client(server.address());
          for (int k = next++; k < heavy * 7 && Clock::now() < until;
               k = next++) {
            v1::GetFeaturesRequest req;
            req.set_view("bench");
            *req.mutable_as_of() = MicrosToTimestamp(kEnd);
            req.add_entities(Entity(k % heavy));
            (void)client.GetFeatures(req);
          }
        });
      }
      for (auto& th : threads) th.join();
      Client client(server.address());
      // Tiles are built in the background: warm means they are all built
      // (within the same time bound).
      auto st = client.GetStatus();
      while (st.ok() && st->tile_builds_pending() > 0 && Clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        st = client.GetStatus();
      }
      std::printf(
          "warm-up: %.1f s, %llu tiles\n",
          std::chrono::duration<double>(Clock::now() - start).count(),
          st.ok() ? static_cast<unsigned long long>(st->tiles()) : 0ULL);
      std::fflush(stdout);
    }
    if (!enabled(i)) continue;
    const Scenario& sc = scenarios[i];
    const LocalServer* echo_server =
        i < 2 ? echo_servers[i].get() : nullptr;  // the median scenarios
    if (echo_server != nullptr) {
      std::tie(ours[i], floor_of[i]) = InterleavedLoops(
          server, Caller(server.address(), ClientOptions(), sc), *echo_server,
          Caller(echo_server->address(), ClientOptions(), sc),
          absl::GetFlag(FLAGS_floor_rounds));
    } else {
      ours[i] =
          MeasuredLoop(server, Caller(server.address(), ClientOptions(), sc));
    }
  }
  // A floor whose scenario did not run is measured on its own.
  for (int k = 0; k < 2; ++k) {
    if (echo_servers[k] == nullptr) continue;
    if (floor_of[k].n == 0) {
      floor_of[k] = MeasuredLoop(
          *echo_servers[k],
          Caller(echo_servers[k]->address(), ClientOptions(), scenarios[k]));
    }
    echo_servers[k]->Terminate();
    echo_servers[k].reset();
  }
  // Ingest alone, then as much again while the heaviest 1% are looked up
  // from --clients closed-loop threads, twice: new events of the data's
  // last day (what a pipeline sends while lookups ask as of the end of the
  // data), then late events on random days of the history. Either kind
  // lands in tiled heavy days: lookups read those events beside the tiles
  // until the sealer folds them in. Ids follow every event stored.
  const int64_t storm_events = absl::GetFlag(FLAGS_storm_events);
  struct StormRun {
    const char* what = "";
    int span_days = 0;
    double alone = 0, with_lookups = 0, ratio = 0;  // medians of rounds
    Stats lookups;                                  // of the last round
    // Of the last round: where the CPU went, and rawfeatd's CPU per event.
    CpuMeter::Busy cpu_alone, cpu_with;
    double server_us_alone = 0, server_us_with = 0;
    // The storm's floor: ingest while the same clients call rawfeat_echo
    // (a heavy entity's answer, nothing computed) at the rate the lookups
    // ran in the same round. Medians of rounds; lookups and CPU of the
    // last round.
    double floor_with = 0, floor_ratio = 0;
    Stats floor_lookups;
    CpuMeter::Busy cpu_floor;
  };
  StormRun storms[2];
  storms[0].what = "new events (last day)";
  storms[0].span_days = 1;
  storms[1].what = "late events (any day)";
  storms[1].span_days = 0;
  // A storm's batches, encoded before its clock and CPU meter start: while
  // timed, the load generator's ingest side only hands bytes to gRPC
  // (encoding took it a quarter of a core, on the cores rawfeatd needs).
  auto encode = [&](int64_t first, int span_days) {
    return bench::EncodeEvents(
        storm_events, [&](int64_t begin, int64_t end, v1::IngestRequest* req) {
          workload.FillBatch(first + begin, first + end, req, span_days);
        });
  };
  auto ingest = [&](std::vector<std::string> batches) {
    const auto t0 = Clock::now();
    const bool ok = bench::LoadEncoded(server.address(), &batches);
    const double secs =
        std::chrono::duration<double>(Clock::now() - t0).count();
    return ok ? storm_events / secs : 0.0;
  };
  // The sealer and tile builder done, so each phase starts alike.
  auto settle = [&] { bench::WaitSettled(server.address(), 60); };
  std::unique_ptr<LocalServer> storm_echo;
  if (storm_events > 0 && !echo.empty()) {
    v1::GetFeaturesRequest req;
    req.set_view("bench");
    *req.mutable_as_of() = MicrosToTimestamp(kEnd);
    req.add_entities(Entity(heavy / 2));
    auto r = Client(server.address()).GetFeatures(req);
    const std::string dir = work + "/echo_heavy";
    std::filesystem::create_directories(dir);
    if (r.ok()) {
      std::ofstream(work + "/echo_response_heavy.bin", std::ios::binary)
          << r->SerializeAsString();
      storm_echo = std::make_unique<LocalServer>(
          echo, work + "/data", dir,
          std::vector<std::string>{"--response_file=" + work +
                                   "/echo_response_heavy.bin"});
    }
    if (storm_echo == nullptr || !storm_echo->ok()) {
      std::fprintf(stderr, "rawfeat_echo for the storms did not start\n");
      return 1;
    }
  }
  for (StormRun& run : storms) {
    if (storm_events <= 0) break;
    std::vector<double> alone, with, ratios, floor_with, floor_ratios;
    for (int round = 0; round < absl::GetFlag(FLAGS_storm_rounds); ++round) {
      auto st = Client(server.address()).GetStatus();
      const int64_t first = std::max<int64_t>(
          absl::GetFlag(FLAGS_events),
          st.ok() ? static_cast<int64_t>(st->watermark()) : 0);
      std::vector<std::string> batches = encode(first, run.span_days);
      settle();
      CpuMeter meter(server);
      alone.push_back(ingest(std::move(batches)));
      run.cpu_alone = meter.Read();
      batches = encode(first + storm_events, run.span_days);
      settle();
      std::atomic<bool> done{false};
      meter.Reset();
      std::thread lookups([&] {
        run.lookups = ClosedLoop(
            Caller(server.address(), ClientOptions(), scenarios[3]), &done);
      });
      with.push_back(ingest(std::move(batches)));
      run.cpu_with = meter.Read();
      done = true;
      lookups.join();
      run.server_us_alone = run.cpu_alone.server * run.cpu_alone.seconds /
                            storm_events * 1e6;
      run.server_us_with =
          run.cpu_with.server * run.cpu_with.seconds / storm_events * 1e6;
      ratios.push_back(alone.back() > 0 ? with.back() / alone.back() : 0);
      if (storm_echo != nullptr) {
        batches = encode(first + 2 * storm_events, run.span_days);
        settle();
        done = false;
        meter.Reset();
        std::thread floor_lookups([&] {
          run.floor_lookups = ClosedLoop(
              Caller(storm_echo->address(), ClientOptions(), scenarios[3]),
              &done, run.lookups.qps);
        });
        floor_with.push_back(ingest(std::move(batches)));
        run.cpu_floor = meter.Read();
        done = true;
        floor_lookups.join();
        floor_ratios.push_back(
            alone.back() > 0 ? floor_with.back() / alone.back() : 0);
      }
      std::printf(
          "storm %-22s round %d: alone %.0f ev/s, with lookups %.0f "
          "ev/s (%.0f%%)",
          run.what, round + 1, alone.back(), with.back(), 100 * ratios.back());
      if (storm_echo != nullptr) {
        std::printf(", with the floor's %.0f ev/s (%.0f%%)", floor_with.back(),
                    100 * floor_ratios.back());
      }
      std::printf("\n");
      std::fflush(stdout);
    }
    run.alone = Median(alone);
    run.with_lookups = Median(with);
    run.ratio = Median(ratios);
    run.floor_with = Median(floor_with);
    run.floor_ratio = Median(floor_ratios);
  }
  if (storm_echo != nullptr) storm_echo->Terminate();

  const long long rss = server.PeakRssBytes();
  server.Terminate();

  std::vector<Stats> redis(scenarios.size());
  const std::string redis_bin = absl::GetFlag(FLAGS_redis_server);
  if (!redis_bin.empty()) {
    const int port = FreePort();
    const pid_t pid = fork();
    if (pid == 0) {
      freopen("/dev/null", "w", stdout);
      execl(redis_bin.c_str(), redis_bin.c_str(), "--port",
            std::to_string(port).c_str(), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", work.c_str(), nullptr);
      _exit(127);
    }
    redisContext* setup = nullptr;
    for (int i = 0; i < 100; ++i) {
      setup = redisConnect("127.0.0.1", port);
      if (setup != nullptr && setup->err == 0) break;
      if (setup != nullptr) redisFree(setup);
      setup = nullptr;
      usleep(50000);
    }
    if (setup == nullptr) {
      std::fprintf(stderr, "redis-server did not start\n");
    } else {
      // One precomputed 8-field row per entity that the scenarios read.
      std::vector<int> ranks;
      for (const auto& sc : scenarios) {
        for (int r = sc.first_rank; r < sc.first_rank + sc.ranks; ++r) {
          ranks.push_back(r);
        }
      }
      for (int r : ranks) {
        redisAppendCommand(setup,
                           "HSET %s orders_1h 1 spend_1d 123.45 avg_7d 61.7 "
                           "items_7d 4 max_30d 480.5 categories_30d 6 "
                           "orders_life 1234 last_category electronics",
                           Entity(r).c_str());
      }
      for (size_t i = 0; i < ranks.size(); ++i) {
        void* reply = nullptr;
        redisGetReply(setup, &reply);
        freeReplyObject(reply);
      }
      redisFree(setup);
      for (size_t i = 0; i < scenarios.size(); ++i) {
        if (!enabled(i)) continue;
        const Scenario sc = scenarios[i];
        redis[i] = ClosedLoop([&] {
          std::shared_ptr<redisContext> ctx(redisConnect("127.0.0.1", port),
                                            redisFree);
          return [ctx, sc](std::mt19937_64& rng) {
            for (int b = 0; b < sc.batch; ++b) {
              if (sc.floor) {
                redisAppendCommand(ctx.get(), "PING");  // Redis's floor
                continue;
              }
              redisAppendCommand(
                  ctx.get(), "HGETALL %s",
                  Entity(sc.first_rank + rng() % sc.ranks).c_str());
            }
            for (int b = 0; b < sc.batch; ++b) {
              void* reply = nullptr;
              if (redisGetReply(ctx.get(), &reply) != REDIS_OK) return false;
              freeReplyObject(reply);
            }
            return true;
          };
        });
      }
    }
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
  }

  // cpu us: rawfeatd's CPU per call; client us: this tool's; busy: cores
  // of the machine in use (of hardware_concurrency) while the scenario ran.
  std::printf(
      "\n%-30s %10s %10s %10s %9s %8s %9s %5s | %9s %9s | %7s %7s | %9s %9s "
      "%9s %9s %5s | %9s %9s\n",
      "scenario", "p50 us", "p99 us", "p99.9 us", "QPS", "cpu us", "client us",
      "busy", "redis p50", "redis p99", "x p50", "x p99", "floor p50",
      "floor p99", "floor cpu", "fl client", "busy", "xfloor p50",
      "xfloor p99");
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0; };
  for (size_t i = 0; i < scenarios.size(); ++i) {
    const Stats& o = ours[i];
    const Stats& r = redis[i];
    const Stats& f = floor_of[scenarios[i].batch == 1 ? 0 : 1];
    std::printf(
        "%-30s %10.0f %10.0f %10.0f %9.0f %8.0f %9.0f %5.2f | %9.0f %9.0f | "
        "%7.1f %7.1f | %9.0f %9.0f %9.0f %9.0f %5.2f | %9.1f %9.1f\n",
        scenarios[i].name, o.p50, o.p99, o.p999, o.qps, o.cpu_us, o.client_us,
        o.busy, r.p50, r.p99, ratio(o.p50, r.p50), ratio(o.p99, r.p99), f.p50,
        f.p99, f.cpu_us, f.client_us, f.busy, ratio(o.p50, f.p50),
        ratio(o.p99, f.p99));
  }
  if (storm_events > 0) {
    std::printf(
        "\nstorms: medians of %d rounds (ev/s and the ratio of each round's "
        "pair); lookups of the last round. The floor: the same clients "
        "call rawfeat_echo (a heavy entity's answer, nothing computed) at "
        "the lookups' rate\n"
        "%-22s %12s | %14s %9s %8s %8s | %9s | %14s %9s %9s\n",
        absl::GetFlag(FLAGS_storm_rounds),
        ("ingest of " + std::to_string(storm_events)).c_str(), "alone ev/s",
        "with lookups", "lookups/s", "p50 us", "p99 us", "of alone",
        "with the floor", "calls/s", "of alone");
    for (const StormRun& run : storms) {
      std::printf(
          "%-22s %12.0f | %14.0f %9.0f %8.0f %8.0f | %8.0f%% | %14.0f %9.0f "
          "%8.0f%%\n",
          run.what, run.alone, run.with_lookups, run.lookups.qps,
          run.lookups.p50, run.lookups.p99, 100 * run.ratio, run.floor_with,
          run.floor_lookups.qps, 100 * run.floor_ratio);
    }
    // Where each phase's CPU went. rawfeatd's CPU per event in the "with"
    // phase also pays for the lookups and the tiles they ask for: beyond
    // the alone phase's, it is what the lookups cost the ingest.
    std::printf(
        "\nstorm CPU, last round, in cores busy of %u (machine = rawfeatd + "
        "this tool's clients + the rest)\n"
        "%-22s %-6s %9s %8s %8s %6s %6s | %18s\n",
        std::thread::hardware_concurrency(), "", "phase", "seconds",
        "machine", "rawfeatd", "tool", "rest", "rawfeatd us/event");
    for (const StormRun& run : storms) {
      for (const int phase : {0, 1, 2}) {
        if (phase == 2 && storm_echo == nullptr) break;
        const CpuMeter::Busy& b = phase == 0   ? run.cpu_alone
                                  : phase == 1 ? run.cpu_with
                                               : run.cpu_floor;
        // The floor's server is the rest's; rawfeatd only ingests.
        std::printf("%-22s %-6s %9.1f %8.2f %8.2f %6.2f %6.2f | %18.1f\n",
                    phase == 0 ? run.what : "",
                    phase == 0   ? "alone"
                    : phase == 1 ? "with"
                                 : "floor",
                    b.seconds, b.machine, b.server, b.tool,
                    std::max(0.0, b.machine - b.server - b.tool),
                    phase == 0   ? run.server_us_alone
                    : phase == 1 ? run.server_us_with
                                 : b.server * b.seconds / storm_events * 1e6);
      }
    }
  }
  std::printf("rawfeatd peak RSS %.0f MiB\n", rss / 1048576.0);
  std::fflush(stdout);
  if (absl::GetFlag(FLAGS_secure_rounds) > 0) {
    return CompareSecure(
        work, {scenarios[0], scenarios[1], scenarios[3], scenarios[5]});
  }
  return 0;
}

}  // namespace
}  // namespace rawfeat

int main(int argc, char** argv) {
  return rawfeat::bench::RunTool(argc, argv, rawfeat::Main);
}
