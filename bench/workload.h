#ifndef RAWFEAT_BENCH_WORKLOAD_H_
#define RAWFEAT_BENCH_WORKLOAD_H_

// The benchmark workload shared by the load tools: E entities with
// Zipf-skewed activity, N `orders` events over D days ending at kEnd, and a
// view of 8 features over 1h/1d/7d/30d/lifetime windows. Event i is a pure
// function of (i, options), so the same data can be loaded into rawfeatd
// and written to CSV for a reference engine.

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "client/client.h"
#include "client/local_server.h"
#include "rawfeat/v1/rawfeat.pb.h"

namespace rawfeat {
namespace bench {

inline constexpr int64_t kEnd = 1795478400LL * 1000000;  // 2026-11-24T00:00Z

// The `orders` stream and the `bench` view, as a schemas/ file.
extern const char kDefinitions[];

std::string Entity(int rank);

// SplitMix64's step: a stateless, well-mixed stream of draws per event
// (s = Mix(s) repeatedly).
uint64_t Mix(uint64_t x);

// Zipf ranks by inverse CDF.
class Zipf {
 public:
  Zipf(int n, double s);
  int Sample(double u) const;  // u uniform in [0, 1)
  int Sample(std::mt19937_64& rng) const;
  double Share(int rank) const;

 private:
  std::vector<double> cdf_;
};

struct Order {
  int rank = 0;  // entity rank
  int64_t time_us = 0;
  double amount = 0;
  int64_t quantity = 0;
  const char* category = "";
  bool coupon = false;
  bool gift = false;
};

struct Workload {
  Workload(int64_t events, int entities, int days, double zipf_s)
      : events(events),
        entities(entities),
        days(days),
        zipf(entities, zipf_s) {}
  int64_t events;
  int entities;
  int days;
  Zipf zipf;
  // StartLoaded starts on the data dir already in `work` (a run of the same
  // workload left it) instead of loading again. Without it, StartLoaded
  // removes a data dir it finds there and loads into an empty store.
  bool reuse = false;

  // Event i: its entity by the Zipf law, its time uniform over the last
  // `span_days` days before kEnd (0: all `days`).
  Order Event(int64_t i, int span_days = 0) const;
  // Appends events [begin, end) to `request` (stream `orders`, ids "e<i>").
  void FillBatch(int64_t begin, int64_t end, v1::IngestRequest* request,
                 int span_days = 0) const;
  // Loads every event into the rawfeatd at `address` (LoadEvents).
  bool Load(const std::string& address) const;

  // Starts `rawfeatd` on a data dir in `work` with the workload's
  // definitions (and any other *.textproto the caller put in `work`),
  // --sync=false (loading only) and `extra_flags` (comma-separated), loads
  // every event and then `also_load(address)` if given, then waits up to
  // `settle_seconds` for the load's compactions and sealing so reads
  // measure a steady state. With `restart`, the server is then stopped and
  // started again on the data dir (the page cache may be warm, no process
  // memory carries over). Prints each phase. nullptr (printed) on failure.
  std::unique_ptr<LocalServer> StartLoaded(
      const std::string& rawfeatd, const std::string& work,
      const std::string& extra_flags, int settle_seconds,
      const std::function<bool(const std::string& address)>& also_load =
          nullptr,
      bool restart = false) const;
};

// Waits (up to `max_seconds`) until the rawfeatd at `address` has been
// settled for 3 s straight (one compaction's end may come just before the
// next one is picked): no compaction running or pending, every event sealed
// into blocks, every tile build asked for done. Returns the seconds waited.
double WaitSettled(const std::string& address, double max_seconds);

// CPU seconds (user + system) that getrusage(who) reports: RUSAGE_SELF
// (this tool) or RUSAGE_CHILDREN (its children reaped so far).
double RusageCpuSeconds(int who);

// A load tool's main: parses the command line, turns off Abseil's
// lock-order checks as rawfeatd does (server/main.cc; Debian's Abseil
// keeps them on), and returns `tool()`.
int RunTool(int argc, char** argv, int (*tool)());

// Sends `count` events to the rawfeatd at `address` over 2 IngestStream
// clients in batches of 1,000; `fill(begin, end, request)` writes events
// [begin, end) and the stream into `request`. False on failure (printed).
using FillFn =
    std::function<void(int64_t begin, int64_t end, v1::IngestRequest*)>;
bool LoadEvents(const std::string& address, int64_t count, const FillFn& fill);

// Removes the data dir an earlier run left in `work` (saying so), so the
// next load starts on an empty store: into a kept one its events would come
// back as duplicates, beside what that run stored (storms, tiles, erasures).
void RemoveEarlierData(const std::string& work);

// The wire bytes of the requests LoadEvents would send for `count` events
// made by `fill`, for a timed load that spends no CPU encoding: a load
// tool shares the server's cores.
std::vector<std::string> EncodeEvents(int64_t count, const FillFn& fill);
// Sends `batches` (EncodeEvents' output, consumed) as LoadEvents does.
bool LoadEncoded(const std::string& address, std::vector<std::string>* batches);

// A server configuration a load tool compares with plain runs: the
// rawfeatd flags it adds and the client options it needs.
struct ServerVariant {
  std::vector<std::string> server_flags;
  ClientOptions client;
  // Another rawfeatd binary (e.g. the build before a change); empty: the
  // one under test.
  std::string binary;
};
// The TLS + tokens variant: a CA and a server certificate for 127.0.0.1
// (made with the openssl CLI), an auth file with one admin token, the
// rawfeatd flags that use them, and client options that trust the CA and
// send the token. Writes the files into `dir`. False (printed) if openssl
// fails.
bool MakeSecureSetup(const std::string& dir, ServerVariant* out);

// Runs RocksDB's db_bench with `args` (e.g. "--benchmarks=fillseq,readseq
// --num=1000000 ...") and returns the ops/s it reports for `benchmark`, or
// -1 (printed) if it cannot run or be parsed. Prints the command.
double RunDbBench(const std::string& db_bench, const std::string& args,
                  const std::string& benchmark);

}  // namespace bench
}  // namespace rawfeat

#endif  // RAWFEAT_BENCH_WORKLOAD_H_
