#include "server/rpc/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace rawfeat {
namespace {

constexpr int kCodes = 17;  // grpc::StatusCode 0..16

const char* CodeName(int code) {
  static const char* const kNames[kCodes] = {"OK",
                                             "CANCELLED",
                                             "UNKNOWN",
                                             "INVALID_ARGUMENT",
                                             "DEADLINE_EXCEEDED",
                                             "NOT_FOUND",
                                             "ALREADY_EXISTS",
                                             "PERMISSION_DENIED",
                                             "RESOURCE_EXHAUSTED",
                                             "FAILED_PRECONDITION",
                                             "ABORTED",
                                             "OUT_OF_RANGE",
                                             "UNIMPLEMENTED",
                                             "INTERNAL",
                                             "UNAVAILABLE",
                                             "DATA_LOSS",
                                             "UNAUTHENTICATED"};
  return kNames[code];
}

// A method's label: "GetFeatures" for rawfeat's own, the full name
// ("grpc.health.v1.Health/Check") for others.
std::string MethodLabel(absl::string_view method) {
  if (absl::ConsumePrefix(&method, "/rawfeat.v1.FeatureStore/")) {
    return std::string(method);
  }
  absl::ConsumePrefix(&method, "/");
  return std::string(method);
}

// Resident set size and open descriptors of this process.
double ResidentBytes() {
  long pages = 0;
  long resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  const int got = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  return got == 2 ? static_cast<double>(resident) * sysconf(_SC_PAGESIZE) : 0;
}

double OpenFiles() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  double n = 0;
  while (struct dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory stream's own descriptor
}

prometheus::MetricFamily Family(const char* name, const char* help,
                                prometheus::MetricType type, double value) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{
          0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,   0.5,     1,      2.5,   5,      10,    30,   60,    300};
  return *kBuckets;
}

}  // namespace

struct Metrics::MethodSeries {
  std::string name;
  prometheus::Gauge* open = nullptr;
  std::array<std::atomic<prometheus::Counter*>, kCodes> count{};
  std::array<std::atomic<prometheus::Histogram*>, kCodes> latency{};
};

struct Metrics::StreamSeries {
  prometheus::Counter* events;
  prometheus::Counter* bytes;
  prometheus::Counter* duplicates;
  prometheus::Counter* expired;
  prometheus::Counter* conflicts;
  prometheus::Counter* invalid;
  prometheus::Counter* failed_batches;
};

// The store's and the process's state, read at each scrape.
class Metrics::Scraped : public prometheus::Collectable {
 public:
  explicit Scraped(const Metrics* metrics) : metrics_(metrics) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    const EventStore& store = *metrics_->store_;
    const EventStore::EngineStats s = store.Stats();
    std::vector<prometheus::MetricFamily> out;
    auto gauge = [&](const char* name, const char* help, double v) {
      out.push_back(Family(name, help, MetricType::Gauge, v));
    };
    auto counter = [&](const char* name, const char* help, double v) {
      out.push_back(Family(name, help, MetricType::Counter, v));
    };
    gauge("rawfeat_watermark", "Highest seq a read may see.",
          static_cast<double>(store.watermark()));
    gauge("rawfeat_tiles", "Day tiles stored.",
          static_cast<double>(store.TileCount()));
    gauge("rawfeat_unsealed_events",
          "Events not sealed into blocks yet (sealed in the background).",
          static_cast<double>(store.UnsealedEvents()));
    gauge("rawfeat_head_bytes",
          "Memory held by events not sealed yet (and by sealed ones that "
          "reads in progress still see); appends wait above --head_max_mb.",
          static_cast<double>(store.HeadBytes()));
    counter("rawfeat_tiles_folded_total",
            "Day tiles that sealing rewrote with their day's new events.",
            static_cast<double>(s.tiles_folded));
    counter("rawfeat_tiles_invalidated_total",
            "Day tiles that sealing deleted instead (their view version "
            "gone, or no views loaded yet).",
            static_cast<double>(s.tiles_invalidated));
    if (const ViewEngine* views = metrics_->views_) {
      counter("rawfeat_tiles_used_total", "Day tiles read by lookups.",
              static_cast<double>(views->tiles_used()));
      counter("rawfeat_tiles_built_total",
              "Day tiles built in the background (for lookups and sealing).",
              static_cast<double>(views->tiles_built()));
    }
    gauge("rocksdb_pending_compaction_bytes",
          "Bytes RocksDB estimates compaction must rewrite.",
          static_cast<double>(s.pending_compaction_bytes));
    gauge("rocksdb_write_stopped", "1 while RocksDB stops writes.",
          s.write_stopped ? 1 : 0);
    gauge("rocksdb_delayed_write_rate_bytes",
          "Write rate RocksDB allows while it slows writes (0: not slowed).",
          static_cast<double>(s.delayed_write_rate));
    counter("rocksdb_stall_seconds_total",
            "Time writes spent delayed or stopped by RocksDB.",
            static_cast<double>(s.stall_micros) / 1e6);
    gauge("rocksdb_memtable_bytes", "Bytes in memtables.",
          static_cast<double>(s.memtable_bytes));
    gauge("rocksdb_block_cache_bytes", "Bytes in the block cache.",
          static_cast<double>(s.block_cache_bytes));
    counter("rocksdb_block_cache_hits_total", "Block cache hits.",
            static_cast<double>(s.block_cache_hits));
    counter("rocksdb_block_cache_misses_total", "Block cache misses.",
            static_cast<double>(s.block_cache_misses));
    const uint64_t lookups = s.block_cache_hits + s.block_cache_misses;
    gauge("rocksdb_block_cache_hit_ratio",
          "Block cache hits / lookups since start (0 before any).",
          lookups == 0 ? 0
                       : static_cast<double>(s.block_cache_hits) /
                             static_cast<double>(lookups));
    gauge("rocksdb_live_sst_bytes", "Bytes of live SST files.",
          static_cast<double>(s.live_sst_bytes));
    gauge("process_resident_memory_bytes", "Resident memory of rawfeatd.",
          ResidentBytes());
    gauge("process_open_fds", "Open file descriptors of rawfeatd.",
          OpenFiles());
    return out;
  }

 private:
  const Metrics* const metrics_;
};

// Per call: counted and timed as its status is sent (before the client can
// see the call end, so a scrape after it counts it); a call that ends
// without a status (cancelled) when the call object goes away.
class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(Metrics* metrics, Metrics::MethodSeries* series)
      : metrics_(metrics),
        series_(series),
        start_(std::chrono::steady_clock::now()) {
    series_->open->Increment();
  }
  ~MetricsInterceptor() override { End(grpc::StatusCode::CANCELLED); }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      End(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void End(int code) {
    if (ended_) return;
    ended_ = true;
    series_->open->Decrement();
    metrics_->RecordCall(
        series_, code,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
            .count());
  }

  Metrics* const metrics_;
  Metrics::MethodSeries* const series_;
  const std::chrono::steady_clock::time_point start_;
  bool ended_ = false;
};

namespace {

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(Metrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return metrics_->NewInterceptor(info->method());
  }

 private:
  Metrics* const metrics_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Metrics>> Metrics::Start(
    const std::string& listen, const EventStore* store) {
  std::unique_ptr<Metrics> m(new Metrics());
  m->store_ = store;
  m->registry_ = std::make_shared<prometheus::Registry>();
  prometheus::Registry& r = *m->registry_;
  m->requests_ = &prometheus::BuildCounter()
                      .Name("rawfeat_requests_total")
                      .Help("Calls per method and status code.")
                      .Register(r);
  m->latency_ = &prometheus::BuildHistogram()
                     .Name("rawfeat_request_seconds")
                     .Help("Call latency (start to end) per method and code.")
                     .Register(r);
  m->open_calls_ = &prometheus::BuildGauge()
                        .Name("rawfeat_open_calls")
                        .Help("Calls open now, per method.")
                        .Register(r);
  auto counter = [&](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(r);
  };
  m->ingest_events_ =
      counter("rawfeat_ingest_events_total", "Events written, per stream.");
  m->ingest_bytes_ = counter("rawfeat_ingest_bytes_total",
                             "Bytes of ingest requests, per stream.");
  m->ingest_duplicates_ =
      counter("rawfeat_ingest_duplicates_total",
              "Events already stored (same id and content), per stream.");
  m->ingest_expired_ =
      counter("rawfeat_ingest_expired_total",
              "Events below their stream's retention horizon (acknowledged, "
              "not stored), per stream.");
  m->ingest_conflicts_ =
      counter("rawfeat_ingest_conflicts_total",
              "Events whose id is stored with other content, per stream.");
  m->ingest_rejected_ =
      counter("rawfeat_ingest_rejected_total",
              "Rows that failed validation, and batches nothing of which was "
              "written (kind=\"row\"|\"batch\"), per stream.");
  m->lookup_entities_ =
      &prometheus::BuildHistogram()
           .Name("rawfeat_lookup_entities")
           .Help("Entities (or rows of keys) per GetFeatures request.")
           .Register(r)
           .Add({}, prometheus::Histogram::BucketBoundaries{
                        1, 2, 5, 10, 20, 50, 100, 200, 500, 1000});
  auto& rows = prometheus::BuildCounter()
                   .Name("rawfeat_rows_sent_total")
                   .Help("Rows answered by streaming reads, per method.")
                   .Register(r);
  m->snapshot_rows_ = &rows.Add({{"method", "Snapshot"}});
  m->join_rows_ = &rows.Add({{"method", "JoinFeatures"}});
  m->scraped_ = std::make_shared<Scraped>(m.get());

  std::string address = listen;
  if (address.find(':') == std::string::npos) {
    address = absl::StrCat("127.0.0.1:", address);
  }
  try {
    m->exposer_ = std::make_unique<prometheus::Exposer>(address, 1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("--metrics_listen ", listen,
                                               ": cannot listen (", e.what(),
                                               "; is the port in use?)"));
  }
  const std::vector<int> ports = m->exposer_->GetListeningPorts();
  if (ports.empty() || ports[0] <= 0) {
    return absl::UnavailableError(
        absl::StrCat("--metrics_listen ", listen, ": cannot listen"));
  }
  m->port_ = ports[0];
  m->address_ =
      absl::StrCat(address.substr(0, address.rfind(':')), ":", m->port_);
  m->exposer_->RegisterCollectable(m->registry_);
  m->exposer_->RegisterCollectable(m->scraped_);
  return m;
}

Metrics::~Metrics() {
  // Stop serving before the series go away.
  exposer_.reset();
}

Metrics::MethodSeries* Metrics::SeriesOf(const std::string& method) {
  absl::MutexLock lock(&mu_);
  auto& series = methods_[method];
  if (series == nullptr) {
    series = std::make_unique<MethodSeries>();
    series->name = method;
    series->open = &open_calls_->Add({{"method", method}});
  }
  return series.get();
}

grpc::experimental::Interceptor* Metrics::NewInterceptor(const char* method) {
  return new MetricsInterceptor(this, SeriesOf(MethodLabel(method)));
}

void Metrics::RecordCall(MethodSeries* series, int code, double seconds) {
  if (code < 0 || code >= kCodes) code = grpc::StatusCode::UNKNOWN;
  prometheus::Counter* count =
      series->count[code].load(std::memory_order_acquire);
  prometheus::Histogram* latency =
      series->latency[code].load(std::memory_order_acquire);
  if (count == nullptr || latency == nullptr) {
    absl::MutexLock lock(&mu_);
    const prometheus::Labels labels = {{"method", series->name},
                                       {"code", CodeName(code)}};
    // Add returns the existing series for labels it has seen.
    count = &requests_->Add(labels);
    latency = &latency_->Add(labels, LatencyBuckets());
    series->count[code].store(count, std::memory_order_release);
    series->latency[code].store(latency, std::memory_order_release);
  }
  count->Increment();
  latency->Observe(seconds);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
Metrics::NewInterceptorFactory() {
  return std::make_unique<MetricsInterceptorFactory>(this);
}

Ingester::Observer Metrics::IngestObserver() {
  return [this](const std::string& stream, const IngestCounts& c) {
    StreamSeries* s;
    {
      absl::MutexLock lock(&mu_);
      auto& series = streams_[stream];
      if (series == nullptr) {
        const prometheus::Labels labels = {{"stream", stream}};
        series = std::make_unique<StreamSeries>(StreamSeries{
            &ingest_events_->Add(labels), &ingest_bytes_->Add(labels),
            &ingest_duplicates_->Add(labels), &ingest_expired_->Add(labels),
            &ingest_conflicts_->Add(labels),
            &ingest_rejected_->Add({{"stream", stream}, {"kind", "row"}}),
            &ingest_rejected_->Add({{"stream", stream}, {"kind", "batch"}})});
      }
      s = series.get();
    }
    s->events->Increment(static_cast<double>(c.accepted));
    s->bytes->Increment(static_cast<double>(c.bytes));
    s->duplicates->Increment(static_cast<double>(c.duplicates));
    s->expired->Increment(static_cast<double>(c.expired));
    s->conflicts->Increment(static_cast<double>(c.conflicts));
    s->invalid->Increment(static_cast<double>(c.invalid));
    if (c.failed) s->failed_batches->Increment();
  };
}

void Metrics::RecordLookup(size_t entities) {
  lookup_entities_->Observe(static_cast<double>(entities));
}

void Metrics::RecordSnapshotRows(size_t rows) {
  snapshot_rows_->Increment(static_cast<double>(rows));
}

void Metrics::RecordJoinRows(size_t rows) {
  join_rows_->Increment(static_cast<double>(rows));
}

}  // namespace rawfeat
