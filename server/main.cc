// rawfeatd: the rawfeat feature store server.

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/common/log.h"
#include "server/server.h"

// rawfeatd allocates with jemalloc (server/CMakeLists.txt), which reads its
// options from this symbol (MALLOC_CONF in the environment still overrides
// them). Ingest frees much: memtables as they flush, head events as they
// seal, blocks the cache drops. Freed pages stay 10 s for reuse, then go
// back to the system straight away (no lazy MADV_FREE stage, so RSS says
// what is held), from one of jemalloc's own threads. A decay of 1 s had
// the next memtable and batch fault fresh zeroed pages in: 4-9% more CPU
// per ingested event for 60-140 MiB less peak RSS (README, "Every goal in
// one run on a faster host"). Big answers and finished streams purge at
// once (ReleaseFreedMemory).
extern "C" {
const char* malloc_conf =
    "dirty_decay_ms:10000,muzzy_decay_ms:0,background_thread:true,"
    "max_background_threads:1";
}

ABSL_FLAG(std::string, listen, "127.0.0.1:7070",
          "host:port to serve gRPC on (port 0 = any free port)");
ABSL_FLAG(std::string, data_dir, "./data", "RocksDB data directory");
ABSL_FLAG(std::string, tls_cert, "", "TLS: server certificate chain (PEM)");
ABSL_FLAG(std::string, tls_key, "", "TLS: server private key (PEM)");
ABSL_FLAG(std::string, tls_client_ca, "",
          "mutual TLS: require client certificates signed by this CA (PEM)");
ABSL_FLAG(int, tls_refresh_seconds, 60,
          "re-read the TLS files this often (rotation without a restart)");
ABSL_FLAG(bool, insecure_listen, false,
          "allow a non-loopback --listen without TLS and authentication");
ABSL_FLAG(std::string, auth_file, "",
          "bearer tokens (SHA-256) and roles, textproto "
          "rawfeat.internal.AuthConfig; re-read on SIGHUP");
ABSL_FLAG(std::string, schemas, "",
          "folder of *.textproto definitions to apply at start-up");
ABSL_FLAG(bool, sync, true,
          "sync the write-ahead log before acknowledging an ingest; false "
          "trades durability of the last acks on power loss for speed");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "largest gRPC message in bytes");
ABSL_FLAG(int, max_batch_rows, 100000, "most rows in one ingest batch");
ABSL_FLAG(int, max_entity_bytes, 1024, "longest entity key in bytes");
ABSL_FLAG(int, max_string_bytes, 64 << 10, "longest STRING value in bytes");
ABSL_FLAG(int, max_event_id_bytes, 512, "longest event_id in bytes");
ABSL_FLAG(int, max_entities, 1000, "most entities per GetFeatures call");
ABSL_FLAG(bool, tiles, true,
          "keep per-day partial aggregates of heavy entities so long windows "
          "do not rescan history (values are identical either way)");
ABSL_FLAG(int, tile_min_events, 8,
          "events a day needs before it is tiled");
ABSL_FLAG(bool, tile_sealed_days, true,
          "tile heavy days of entities whose old events were sealed, in the "
          "background once sealing is quiet, before any lookup asks");
ABSL_FLAG(int, seal_min_events, 128,
          "seal an entity's new events into its blocks once it has this "
          "many in memory (every entity's once ingest pauses; the biggest "
          "when the head is half full); 0 = only when the head is full "
          "(reads are identical either way)");
ABSL_FLAG(int64_t, compact_idle_seconds, 30,
          "once appends have paused this long, merge level 0 of the data "
          "lookups read into the level below (fewer sorted runs per "
          "lookup); 0 = never");
ABSL_FLAG(int64_t, head_max_mb, 256,
          "memory for events not sealed into blocks yet (the head); an "
          "append waits for sealing above it");
ABSL_FLAG(int64_t, join_run_rows, 1000000,
          "most label rows one JoinFeatures call holds in memory");
ABSL_FLAG(int, analyst_threads, 0,
          "threads one Snapshot/JoinFeatures call uses (0 = one per CPU)");
ABSL_FLAG(int, lookup_threads, 0,
          "threads that compute one GetFeatures call's entities: its handler "
          "and helpers that take groups of 16 entities while idle (0 = one "
          "per CPU, at most 4; 1 = the handler alone)");
ABSL_FLAG(int64_t, block_cache_mb, 512, "RocksDB block cache in MiB");
ABSL_FLAG(bool, tail_point_reads, true,
          "lookups read an entity's tail block by key first (false: they "
          "seek its blocks, as before storage format 6; for measurements)");
ABSL_FLAG(bool, accept_data_loss, false,
          "start even though acknowledged events are lost (a damaged "
          "write-ahead log): serve what precedes the damage, record the lost "
          "seq range (GetStatus) and never issue those seqs again");
ABSL_FLAG(int64_t, min_free_disk_mb, 128,
          "refuse ingest (RESOURCE_EXHAUSTED) while the data dir's disk has "
          "less free space than this; reads go on, writes resume once space "
          "is freed");
ABSL_FLAG(int, max_read_events, 64, "most open ReadEvents calls");
ABSL_FLAG(int, max_snapshots, 64, "most open Snapshot calls");
ABSL_FLAG(int, max_joins, 64, "most open JoinFeatures calls");
ABSL_FLAG(int, max_ingest_streams, 64, "most open IngestStream calls");
ABSL_FLAG(int, max_calls_per_principal, 16,
          "with --auth_file: most streaming calls one principal may have "
          "open (its max_streaming_calls in the file overrides it)");
ABSL_FLAG(int, stall_seconds, 300,
          "end a server stream whose client reads nothing for this long");
ABSL_FLAG(std::string, port_file, "",
          "if set, write the bound port to this file once serving");
ABSL_FLAG(std::string, restore_from, "",
          "restore this backup (rawfeat backup) into --data_dir, which must "
          "be absent or empty, then serve it");
ABSL_FLAG(std::string, metrics_listen, "",
          "HOST:PORT (or PORT: 127.0.0.1) serving Prometheus metrics at "
          "/metrics; empty = off");
ABSL_FLAG(int, shutdown_drain_seconds, 0,
          "at shutdown, report NOT_SERVING on the health service this long "
          "before refusing calls");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "rawfeatd --listen 127.0.0.1:7070 --data_dir ./data --schemas schemas/");
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil is built without NDEBUG, so every absl::Mutex lock
  // (ours and gRPC's) is checked against a process-wide lock-order graph,
  // and a potential cycle aborts the process. The tests keep that check;
  // the server neither pays for it nor dies of it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // Block the stop signals in every thread; one thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);  // reloads --auth_file
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  rawfeat::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  options.tls.refresh_seconds = absl::GetFlag(FLAGS_tls_refresh_seconds);
  options.insecure_listen = absl::GetFlag(FLAGS_insecure_listen);
  options.auth_file = absl::GetFlag(FLAGS_auth_file);
  options.schemas_dir = absl::GetFlag(FLAGS_schemas);
  options.store.sync = absl::GetFlag(FLAGS_sync);
  options.store.accept_data_loss = absl::GetFlag(FLAGS_accept_data_loss);
  options.store.min_free_bytes = static_cast<uint64_t>(std::max<int64_t>(
                                     0, absl::GetFlag(FLAGS_min_free_disk_mb)))
                                 << 20;
  options.store.block_cache_bytes =
      static_cast<size_t>(absl::GetFlag(FLAGS_block_cache_mb)) << 20;
  options.store.tail_point_reads = absl::GetFlag(FLAGS_tail_point_reads);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.max_entities = absl::GetFlag(FLAGS_max_entities);
  options.tiles = absl::GetFlag(FLAGS_tiles);
  options.tile_min_events = absl::GetFlag(FLAGS_tile_min_events);
  options.tile_sealed_days = absl::GetFlag(FLAGS_tile_sealed_days);
  if (absl::GetFlag(FLAGS_head_max_mb) < 1) {
    std::fprintf(stderr, "rawfeatd: --head_max_mb must be 1 or more\n");
    return 2;
  }
  options.store.head_max_bytes =
      static_cast<size_t>(absl::GetFlag(FLAGS_head_max_mb)) << 20;
  if (absl::GetFlag(FLAGS_seal_min_events) < 0) {
    std::fprintf(stderr, "rawfeatd: --seal_min_events must be 0 or more\n");
    return 2;
  }
  options.store.seal_min_events =
      static_cast<size_t>(absl::GetFlag(FLAGS_seal_min_events));
  if (absl::GetFlag(FLAGS_compact_idle_seconds) < 0) {
    std::fprintf(stderr,
                 "rawfeatd: --compact_idle_seconds must be 0 or more\n");
    return 2;
  }
  options.store.compact_idle_ms =
      absl::GetFlag(FLAGS_compact_idle_seconds) * 1000;
  if (absl::GetFlag(FLAGS_join_run_rows) < 1) {
    std::fprintf(stderr, "rawfeatd: --join_run_rows must be at least 1\n");
    return 2;
  }
  options.join_run_rows =
      static_cast<size_t>(absl::GetFlag(FLAGS_join_run_rows));
  options.analyst_threads = absl::GetFlag(FLAGS_analyst_threads);
  options.lookup_threads = absl::GetFlag(FLAGS_lookup_threads);
  options.streams.max_read_events = absl::GetFlag(FLAGS_max_read_events);
  options.streams.max_snapshots = absl::GetFlag(FLAGS_max_snapshots);
  options.streams.max_joins = absl::GetFlag(FLAGS_max_joins);
  options.streams.max_ingest_streams = absl::GetFlag(FLAGS_max_ingest_streams);
  options.streams.max_calls_per_principal =
      absl::GetFlag(FLAGS_max_calls_per_principal);
  options.streams.stall_timeout =
      absl::Seconds(absl::GetFlag(FLAGS_stall_seconds));
  options.restore_from = absl::GetFlag(FLAGS_restore_from);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.shutdown_drain =
      absl::Seconds(absl::GetFlag(FLAGS_shutdown_drain_seconds));
  options.limits.max_batch_rows = absl::GetFlag(FLAGS_max_batch_rows);
  options.limits.max_entity_bytes = absl::GetFlag(FLAGS_max_entity_bytes);
  options.limits.max_string_bytes = absl::GetFlag(FLAGS_max_string_bytes);
  options.limits.max_event_id_bytes = absl::GetFlag(FLAGS_max_event_id_bytes);

  auto server = rawfeat::Server::Start(options);
  if (!server.ok()) {
    rawfeat::LogError(
        absl::StrCat("cannot start: ", server.status().ToString()));
    return 1;
  }
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    FILE* f = fopen(tmp.c_str(), "w");
    if (f == nullptr || fprintf(f, "%d\n", (*server)->port()) < 0 ||
        fclose(f) != 0 || rename(tmp.c_str(), port_file.c_str()) != 0) {
      rawfeat::LogError(absl::StrCat("cannot write ", port_file));
      return 1;
    }
  }
  int sig = 0;
  while (sigwait(&stop_signals, &sig) == 0 && sig == SIGHUP) {
    (void)(*server)->ReloadAuth();  // logs the outcome
  }
  rawfeat::LogInfo(absl::StrCat("signal ", sig, ": shutting down"));
  (*server)->Shutdown();
  server->reset();
  rawfeat::LogInfo("stopped cleanly");
  return 0;
}
