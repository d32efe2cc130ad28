#include "bench/workload.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <thread>

#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "client/client.h"
#include "server/common/time_util.h"

namespace rawfeat {
namespace bench {

const char kDefinitions[] =
#include "bench_definitions.inc"
    ;

std::string Entity(int rank) { return absl::StrCat("user-", rank); }

Zipf::Zipf(int n, double s) : cdf_(n) {
  double total = 0;
  for (int i = 0; i < n; ++i) total += 1.0 / std::pow(i + 1, s);
  double acc = 0;
  for (int i = 0; i < n; ++i) {
    acc += 1.0 / std::pow(i + 1, s) / total;
    cdf_[i] = acc;
  }
}

int Zipf::Sample(double u) const {
  const auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u);
  return static_cast<int>(
      std::min<ptrdiff_t>(it - cdf_.begin(), cdf_.size() - 1));
}

int Zipf::Sample(std::mt19937_64& rng) const {
  return Sample(std::uniform_real_distribution<double>(0, 1)(rng));
}

double Zipf::Share(int rank) const {
  return rank == 0 ? cdf_[0] : cdf_[rank] - cdf_[rank - 1];
}

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

Order Workload::Event(int64_t i, int span_days) const {
  static const char* kCategories[] = {
      "books",   "toys",   "food",  "garden", "electronics",
      "fashion", "sports", "music", "beauty", "auto"};
  uint64_t s = static_cast<uint64_t>(i) * 0x2545f4914f6cdd1dULL + 12345;
  auto draw = [&]() { return s = Mix(s); };
  const uint64_t span =
      static_cast<uint64_t>(span_days > 0 ? span_days : days) * 86400ULL *
      1000000;
  Order o;
  o.rank = zipf.Sample(static_cast<double>(draw() >> 11) * 0x1.0p-53);
  o.time_us = kEnd - 1 - static_cast<int64_t>(draw() % span);
  o.amount = static_cast<double>(draw() % 50000) / 100;
  o.quantity = 1 + static_cast<int64_t>(draw() % 5);
  o.category = kCategories[draw() % 10];
  o.coupon = draw() % 4 == 0;
  o.gift = draw() % 8 == 0;
  return o;
}

void Workload::FillBatch(int64_t begin, int64_t end,
                         v1::IngestRequest* request, int span_days) const {
  request->set_stream("orders");
  for (int64_t i = begin; i < end; ++i) {
    const Order o = Event(i, span_days);
    v1::Event* e = request->add_events();
    e->set_event_id(absl::StrCat("e", i));
    e->set_entity(Entity(o.rank));
    *e->mutable_event_time() = MicrosToTimestamp(o.time_us);
    auto& f = *e->mutable_fields();
    f["amount"].set_double_value(o.amount);
    f["quantity"].set_int64_value(o.quantity);
    f["category"].set_string_value(o.category);
    if (o.coupon) f["coupon"].set_string_value("SAVE10");
    if (o.gift) f["is_gift"].set_bool_value(true);
  }
}

bool Workload::Load(const std::string& address) const {
  return LoadEvents(address, events,
                    [this](int64_t begin, int64_t end, v1::IngestRequest* r) {
                      FillBatch(begin, end, r);
                    });
}

double WaitSettled(const std::string& address, double max_seconds) {
  using Clock = std::chrono::steady_clock;
  Client client(address);
  const auto begin = Clock::now();
  auto since = [&] {
    return std::chrono::duration<double>(Clock::now() - begin).count();
  };
  int quiet = 0;
  // 3 s of quiet: long enough to see the merge of level 0 that a pause
  // of a second starts (bench servers run with --compact_idle_seconds=1).
  while (since() < max_seconds && quiet < 6) {
    auto st = client.GetStatus();
    if (!st.ok()) break;
    const bool idle = !st->compacting() && st->unsealed_events() == 0 &&
                      st->tile_builds_pending() == 0;
    quiet = idle ? quiet + 1 : 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return since();
}

double RusageCpuSeconds(int who) {
  struct rusage u;
  if (getrusage(who, &u) != 0) return 0;
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec +
         (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int RunTool(int argc, char** argv, int (*tool)()) {
  absl::ParseCommandLine(argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return tool();
}

namespace {

constexpr int kLoadClients = 2;
constexpr int kLoadBatch = 1000;

// Sends the requests `next(request_bytes)` hands out (false: no more) over
// kLoadClients IngestStream calls at once. `next` is called concurrently.
bool SendBatches(const std::string& address,
                 const std::function<bool(std::string*)>& next) {
  std::atomic<bool> ok{true};
  std::vector<std::thread> threads;
  for (int t = 0; t < kLoadClients; ++t) {
    threads.emplace_back([&] {
      Client client(address);
      auto r = client.IngestStreamEncoded(next);
      if (!r.ok()) {
        std::fprintf(stderr, "load failed: %s\n",
                     r.status().ToString().c_str());
        ok = false;
      }
    });
  }
  for (auto& th : threads) th.join();
  return ok;
}

}  // namespace

bool LoadEvents(const std::string& address, int64_t count, const FillFn& fill) {
  std::atomic<int64_t> next{0};
  return SendBatches(address, [&](std::string* bytes) {
    const int64_t start = next.fetch_add(kLoadBatch);
    if (start >= count) return false;
    v1::IngestRequest request;
    fill(start, std::min(count, start + kLoadBatch), &request);
    request.SerializeToString(bytes);
    return true;
  });
}

std::vector<std::string> EncodeEvents(int64_t count, const FillFn& fill) {
  std::vector<std::string> batches;
  batches.reserve(static_cast<size_t>((count + kLoadBatch - 1) / kLoadBatch));
  v1::IngestRequest request;
  for (int64_t start = 0; start < count; start += kLoadBatch) {
    request.Clear();
    fill(start, std::min(count, start + kLoadBatch), &request);
    request.SerializeToString(&batches.emplace_back());
  }
  return batches;
}

bool LoadEncoded(const std::string& address,
                 std::vector<std::string>* batches) {
  std::atomic<size_t> next{0};
  return SendBatches(address, [&](std::string* bytes) {
    const size_t i = next++;
    if (i >= batches->size()) return false;
    bytes->swap((*batches)[i]);
    return true;
  });
}

void RemoveEarlierData(const std::string& work) {
  std::error_code ec;
  if (std::filesystem::remove_all(work + "/data", ec) > 0) {
    std::printf("removed the data dir an earlier run left in %s/data\n",
                work.c_str());
  }
}

std::unique_ptr<LocalServer> Workload::StartLoaded(
    const std::string& rawfeatd, const std::string& work,
    const std::string& extra_flags, int settle_seconds,
    const std::function<bool(const std::string& address)>& also_load,
    bool restart) const {
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  std::ofstream(work + "/defs.textproto") << kDefinitions;
  if (!reuse) RemoveEarlierData(work);
  // Level 0 merged down a second after the load (what a server idle for
  // --compact_idle_seconds gets), within the settling that follows.
  std::vector<std::string> flags = {"--schemas=" + work, "--sync=false",
                                    "--compact_idle_seconds=1"};
  for (absl::string_view f :
       absl::StrSplit(extra_flags, ',', absl::SkipEmpty())) {
    flags.emplace_back(f);
  }
  auto server =
      std::make_unique<LocalServer>(rawfeatd, work + "/data", work, flags);
  if (!server->ok()) {
    std::fprintf(stderr, "rawfeatd did not start\n");
    return nullptr;
  }
  auto start = Clock::now();
  const auto found = Client(server->address()).GetStatus();
  if (reuse && found.ok() &&
      found->watermark() >= static_cast<uint64_t>(events)) {
    std::printf("reused the data in %s/data\n", work.c_str());
  } else {
    if (!Load(server->address())) return nullptr;
    const double load_secs = since(start);
    std::printf("loaded in %.1f s (%.0f events/s)\n", load_secs,
                static_cast<double>(events) / load_secs);
  }
  if (also_load && !also_load(server->address())) return nullptr;
  auto settle = [&](const std::string& address) {
    return WaitSettled(address, settle_seconds);
  };
  const double settled = settle(server->address());
  {
    auto st = Client(server->address()).GetStatus();
    std::printf(
        "compactions, sealing and tiling settled after %.1f s (%llu tiles); "
        "rawfeatd RSS %.0f MiB\n",
        settled,
        st.ok() ? static_cast<unsigned long long>(st->tiles()) : 0ULL,
        server->RssBytes() / 1048576.0);
  }
  if (restart) {
    start = Clock::now();
    server->Terminate();
    server =
        std::make_unique<LocalServer>(rawfeatd, work + "/data", work, flags);
    if (!server->ok()) {
      std::fprintf(stderr, "rawfeatd did not restart\n");
      return nullptr;
    }
    const double restarted = since(start);
    // Reopening may start a compaction (the memtables replayed from the
    // write-ahead log are flushed into level 0): the reads wait for it.
    const double resettled = settle(server->address());
    std::printf(
        "restarted in %.1f s, compactions settled %.1f s later; rawfeatd RSS "
        "%.0f MiB\n",
        restarted, resettled, server->RssBytes() / 1048576.0);
  }
  std::fflush(stdout);
  return server;
}

bool MakeSecureSetup(const std::string& dir, ServerVariant* out) {
  const std::string script = absl::StrCat(
      "set -e; cd '", dir, "'; ",
      "printf 'subjectAltName = IP:127.0.0.1\\n' > san.cnf; ",
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem "
      "-days 2 -subj '/CN=bench CA'; ",
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out "
      "server.csr -subj '/CN=localhost'; ",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
      "-CAcreateserial -out server.pem -days 2 -extfile san.cnf; ",
      "printf 'principals { name: \"bench\" role: \"admin\" "
      "token_sha256: \"%s\" }\\n' \"$(printf %s bench-token | sha256sum "
      "| cut -d' ' -f1)\" > auth.textproto; chmod 600 auth.textproto");
  if (std::system(absl::StrCat("(", script, ") >/dev/null 2>&1").c_str()) !=
      0) {
    std::fprintf(stderr, "openssl failed making the TLS files in %s\n",
                 dir.c_str());
    return false;
  }
  out->server_flags = {"--tls_cert=" + dir + "/server.pem",
                       "--tls_key=" + dir + "/server.key",
                       "--auth_file=" + dir + "/auth.textproto"};
  std::ifstream in(dir + "/ca.pem");
  out->client.tls = true;
  out->client.tls_root_pem.assign(std::istreambuf_iterator<char>(in),
                                  std::istreambuf_iterator<char>());
  out->client.token = "bench-token";
  return true;
}

double RunDbBench(const std::string& db_bench, const std::string& args,
                  const std::string& benchmark) {
  const std::string cmd = absl::StrCat(db_bench, " ", args, " 2>&1");
  std::fprintf(stderr, "  $ %s\n", cmd.c_str());
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  std::string output;
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof(buf), p)) > 0) output.append(buf, got);
  pclose(p);
  std::smatch m;
  const std::regex re(benchmark +
                      R"(\s*:\s*([\d.]+) micros/op\s+(\d+) ops/sec)");
  if (!std::regex_search(output, m, re)) {
    std::fprintf(stderr, "cannot parse db_bench output:\n%s\n", output.c_str());
    return -1;
  }
  std::fprintf(stderr, "  %s\n", m[0].str().c_str());
  return std::stod(m[2].str());
}

}  // namespace bench
}  // namespace rawfeat
