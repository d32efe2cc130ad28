#ifndef RAWFEAT_SERVER_RPC_METRICS_H_
#define RAWFEAT_SERVER_RPC_METRICS_H_

// Prometheus metrics of one rawfeatd (prometheus-cpp), served as text at
// http://HOST:PORT/metrics when --metrics_listen is set; nothing is
// recorded otherwise. Hot paths touch only series created once and cached
// (an atomic add, or a histogram's own lock); gauges of the store and the
// process (watermark, RocksDB, RSS, open files) are read when scraped.
// Thread-safe.

#include <array>
#include <atomic>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/server_interceptor.h"
#include "server/events/ingester.h"
#include "server/storage/event_store.h"
#include "server/views/view_engine.h"

namespace prometheus {
class Counter;
class Exposer;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace rawfeat {

class Metrics {
 public:
  // Serves /metrics on `listen` (HOST:PORT; PORT alone binds 127.0.0.1;
  // port 0 picks a free one). Errors: UNAVAILABLE if it cannot listen.
  // REQUIRES: `store` and `views` outlive the metrics (views may be set
  // later with set_views).
  static absl::StatusOr<std::unique_ptr<Metrics>> Start(
      const std::string& listen, const EventStore* store);
  ~Metrics();

  void set_views(const ViewEngine* views) { views_ = views; }
  // The port /metrics is served on.
  int port() const { return port_; }
  const std::string& address() const { return address_; }

  // Counts every call per method and status code, its latency, and the
  // calls open now; install it after the interceptor that rewrites status.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewInterceptorFactory();
  // The ingester's observer: events, bytes, duplicates, conflicts and
  // rejected rows per stream.
  Ingester::Observer IngestObserver();
  // Entities (or key rows) of one GetFeatures request.
  void RecordLookup(size_t entities);
  // Rows a Snapshot or JoinFeatures call sent.
  void RecordSnapshotRows(size_t rows);
  void RecordJoinRows(size_t rows);

  // Per method: series created on first use.
  struct MethodSeries;
  // The interceptor of one call of `method` (the factory's work).
  grpc::experimental::Interceptor* NewInterceptor(const char* method);
  // One ended call of `series` with status `code`, `seconds` long.
  void RecordCall(MethodSeries* series, int code, double seconds);

 private:
  Metrics() = default;
  MethodSeries* SeriesOf(const std::string& method);

  class Scraped;  // the gauges read at scrape time
  const EventStore* store_ = nullptr;
  const ViewEngine* views_ = nullptr;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<Scraped> scraped_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  std::string address_;

  prometheus::Family<prometheus::Counter>* requests_ = nullptr;
  prometheus::Family<prometheus::Histogram>* latency_ = nullptr;
  prometheus::Family<prometheus::Gauge>* open_calls_ = nullptr;
  prometheus::Family<prometheus::Counter>* ingest_events_ = nullptr;
  prometheus::Family<prometheus::Counter>* ingest_bytes_ = nullptr;
  prometheus::Family<prometheus::Counter>* ingest_duplicates_ = nullptr;
  prometheus::Family<prometheus::Counter>* ingest_expired_ = nullptr;
  prometheus::Family<prometheus::Counter>* ingest_conflicts_ = nullptr;
  prometheus::Family<prometheus::Counter>* ingest_rejected_ = nullptr;
  prometheus::Histogram* lookup_entities_ = nullptr;
  prometheus::Counter* snapshot_rows_ = nullptr;
  prometheus::Counter* join_rows_ = nullptr;

  absl::Mutex mu_;  // creating series
  absl::flat_hash_map<std::string, std::unique_ptr<MethodSeries>> methods_
      ABSL_GUARDED_BY(mu_);
  struct StreamSeries;
  absl::flat_hash_map<std::string, std::unique_ptr<StreamSeries>> streams_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_RPC_METRICS_H_
