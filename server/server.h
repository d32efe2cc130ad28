#ifndef RAWFEAT_SERVER_SERVER_H_
#define RAWFEAT_SERVER_SERVER_H_

// rawfeatd as a library: opens the store, loads and applies definitions,
// and serves rawfeat.v1.FeatureStore over gRPC. Tests embed it on
// 127.0.0.1:0; main.cc wraps it with flags and signals.

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/rpc/metrics.h"
#include "server/rpc/service.h"
#include "server/schema/event_validator.h"
#include "server/storage/event_store.h"

namespace grpc {
class Server;
}

namespace rawfeat {

class Registry;
class Ingester;
class Replayer;
class ViewEngine;

// TLS on the listening port (PEM files).
struct TlsOptions {
  // Server certificate chain and private key; both empty = no TLS.
  std::string cert_file;
  std::string key_file;
  // If set, clients must present a certificate signed by this CA (mutual
  // TLS): the connection is refused otherwise.
  std::string client_ca_file;
  // The files are re-read this often, so a rotated certificate is served
  // without a restart. Default: 60 s.
  int refresh_seconds = 60;
};

struct ServerOptions {
  // host:port to listen on; port 0 picks a free one. Default: 127.0.0.1:7070.
  std::string listen = "127.0.0.1:7070";
  TlsOptions tls;
  // Serve a non-loopback address without mutual TLS or tokens (anyone who
  // can reach the port could read and write everything). Default: false:
  // such a start is refused.
  bool insecure_listen = false;
  // How often such a server repeats its warning in the log. Default: 1 h.
  absl::Duration insecure_warning_every = absl::Hours(1);
  // Bearer tokens and their roles (rpc/auth.h); empty = no token checks.
  std::string auth_file;
  // RocksDB directory. Default: ./data.
  std::string data_dir = "./data";
  // A backup (rawfeat backup: a DIR/backup-W directory, or DIR for its
  // newest) restored into data_dir, which must be absent or empty, before
  // it is opened. Default: empty (none).
  std::string restore_from;
  // A folder of *.textproto definitions applied at start-up; empty = none.
  std::string schemas_dir;
  // Storage settings (sync: WAL synced before an ingest ack).
  EventStoreOptions store;
  IngestLimits limits;
  // Most entities per GetFeatures call. Default: 1,000.
  int max_entities = 1000;
  // Day tiles for heavy entities (see ViewEngine::Options). Default: on.
  bool tiles = true;
  int tile_min_events = 8;
  // Tile heavy old days of what the sealer sealed, ahead of lookups
  // (ViewEngine::Options::tile_sealed_days). Default: on.
  bool tile_sealed_days = true;
  // Most label rows a JoinFeatures call holds at once (see JoinSession).
  // Default: 1,000,000.
  size_t join_run_rows = 1000000;
  // Threads one Snapshot or JoinFeatures call computes with; 0 = one per
  // CPU. Default: 0.
  int analyst_threads = 0;
  // Threads that compute one GetFeatures call's entities: its handler and
  // helpers shared by all calls, which help only while idle (a call of 16
  // entities or fewer is its handler's alone); 0 = one per CPU, at most 4.
  // Default: 0.
  int lookup_threads = 0;
  // Largest request/response message in bytes. Default: 64 MiB.
  int max_message_bytes = 64 << 20;
  // Caps of the streaming calls and the stalled-reader timeout.
  StreamLimits streams;
  // HOST:PORT serving Prometheus metrics at /metrics (PORT alone binds
  // 127.0.0.1; port 0 picks a free one); empty = no metrics, nothing
  // recorded. Default: empty.
  std::string metrics_listen;
  // At Shutdown, how long the health service reports NOT_SERVING while
  // the server still serves, so load balancers move away first.
  // Default: 0.
  absl::Duration shutdown_drain = absl::ZeroDuration();
};

class Server {
 public:
  // Opens the data dir, loads stored definitions, applies schemas_dir (a
  // broken definition is reported by GetStatus, never fatal) and starts
  // serving. Errors: the store cannot be opened, or the address cannot be
  // bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const ServerOptions& options);

  ~Server();  // Shutdown() then release everything.

  // The port actually bound.
  int port() const { return port_; }
  std::string address() const;

  // The store, for tests and tools in this process (e.g. CompactAll).
  EventStore* store() const { return store_.get(); }
  // The view engine, for tests in this process (e.g. tiles_used).
  const ViewEngine& views() const { return *views_; }

  // The address /metrics is served on ("" without metrics).
  std::string metrics_address() const;
  // Reports NOT_SERVING on the health service (grpc.health.v1) while still
  // serving. Shutdown begins with it. Idempotent; thread-safe.
  void Drain();
  // Drains for options.shutdown_drain, stops accepting RPCs, waits for
  // running ones (up to a deadline), and closes the store. Idempotent;
  // thread-safe.
  void Shutdown();
  // Blocks until Shutdown() completes.
  void Wait();

  // Re-reads --auth_file (SIGHUP); a file that fails keeps the previous
  // principals (reported by GetStatus.auth_problem). No-op without one.
  absl::Status ReloadAuth();

 private:
  Server() = default;
  int port_ = 0;
  std::string host_;
  std::unique_ptr<EventStore> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Ingester> ingester_;
  std::unique_ptr<Replayer> replayer_;
  std::unique_ptr<ViewEngine> views_;
  std::unique_ptr<Authorizer> auth_;
  std::unique_ptr<Metrics> metrics_;
  absl::Duration shutdown_drain_;
  std::unique_ptr<FeatureStoreService> service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  // Why this server is unsafe to expose ("" if it is not), repeated in the
  // log by warner_ until Shutdown.
  std::string insecure_;
  absl::Duration insecure_every_;
  void WarnInsecure() const;
  absl::Mutex warner_mu_;
  bool stopping_ ABSL_GUARDED_BY(warner_mu_) = false;
  std::thread warner_;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_SERVER_H_
