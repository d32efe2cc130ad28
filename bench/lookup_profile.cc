// Where one GetFeatures lookup's time goes, without gRPC: opens a data dir
// that features_load left (--work_dir, rawfeatd stopped), and runs
// ViewEngine::GetFeatures in process for entities of a Zipf rank range,
// first to warm the block cache, then measured with RocksDB's perf context
// (PerfLevel::kEnableTimeExceptForMutex), then again without it. As in
// rawfeatd, request and response live on one protobuf arena and jemalloc
// allocates. Prints, per lookup: wall time, RocksDB's time in iterator
// creation, seeks and block reads, and how many table files, filters and
// blocks it touched.
//
//   lookup_profile --data_dir /tmp/fl/data [--first_rank 49500 --ranks 1000]
//                  [--batch 1] [--lookups 20000] [--compact]
//                  [--point_reads=false]

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "absl/flags/flag.h"
#include "bench/workload.h"
#include "google/protobuf/arena.h"
#include "rocksdb/perf_context.h"
#include "rocksdb/perf_level.h"
#include "server/common/stack_arena.h"
#include "server/common/time_util.h"
#include "server/schema/registry.h"
#include "server/storage/event_store.h"
#include "server/views/view_engine.h"

ABSL_FLAG(std::string, data_dir, "", "a data dir features_load loaded");
ABSL_FLAG(int, first_rank, 49500, "first Zipf rank looked up (median: 49500)");
ABSL_FLAG(int, ranks, 1000, "ranks looked up, from first_rank");
ABSL_FLAG(int, batch, 1, "entities per lookup");
ABSL_FLAG(int, lookups, 20000, "lookups measured (as many warm the cache)");
ABSL_FLAG(bool, point_reads, true,
          "read each entity's tail block by a point read first (false: "
          "seek, as before storage format 6)");
ABSL_FLAG(int, tile_min_events, rawfeat::ViewEngine::Options().tile_min_events,
          "the fewest events a day needs for the lookups to tile it "
          "(rawfeatd --tile_min_events)");
ABSL_FLAG(int, lookup_threads, 1,
          "threads computing one lookup's entities (the server's "
          "--lookup_threads)");
ABSL_FLAG(bool, compact, false,
          "first compact the whole store (every family to its last level), "
          "then measure");

namespace rawfeat {
namespace {

int Main() {
  EventStoreOptions store_options;
  store_options.seal_min_events = 0;  // a read-only look: nothing moves
  store_options.tail_point_reads = absl::GetFlag(FLAGS_point_reads);
  auto store = EventStore::Open(absl::GetFlag(FLAGS_data_dir), store_options);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  if (absl::GetFlag(FLAGS_compact)) {
    const absl::Status s = (*store)->CompactAll();
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
  }
  Registry registry(store->get());
  if (!registry.Load().ok()) return 1;
  ViewEngine::Options options;
  options.tile_sealed_days = false;
  options.tile_min_events = absl::GetFlag(FLAGS_tile_min_events);
  options.lookup_threads = absl::GetFlag(FLAGS_lookup_threads);
  ViewEngine views(store->get(), &registry, options);

  const int lookups = absl::GetFlag(FLAGS_lookups);
  std::mt19937_64 rng(7);
  auto lookup = [&] {
    // As FeatureStoreService::GetFeatures does it (server/rpc/service.cc).
    StackArena<8192> arena;
    auto* request =
        google::protobuf::Arena::CreateMessage<v1::GetFeaturesRequest>(
            arena.get());
    request->set_view("bench");
    *request->mutable_as_of() = MicrosToTimestamp(bench::kEnd);
    for (int i = 0; i < absl::GetFlag(FLAGS_batch); ++i) {
      request->add_entities(bench::Entity(
          absl::GetFlag(FLAGS_first_rank) +
          static_cast<int>(rng() % absl::GetFlag(FLAGS_ranks))));
    }
    auto* response =
        google::protobuf::Arena::CreateMessage<v1::GetFeaturesResponse>(
            arena.get());
    return views.GetFeatures(*request, response).ok();
  };
  // Microseconds for `lookups` lookups; negative if one failed.
  auto timed = [&]() -> double {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < lookups; ++i) {
      if (!lookup()) return -1;
    }
    return std::chrono::duration<double, std::micro>(
               std::chrono::steady_clock::now() - start)
        .count();
  };
  if (timed() < 0) return 1;  // warms the cache
  const uint64_t tiles_before = views.tiles_used();
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableTimeExceptForMutex);
  rocksdb::get_perf_context()->Reset();
  const double wall_us = timed();
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  const rocksdb::PerfContext p = *rocksdb::get_perf_context();
  const double plain_us = timed();
  if (wall_us < 0 || plain_us < 0) return 1;
  const double n = lookups;
  std::printf(
      "%d lookups of %d entities (ranks %d..%d), per lookup:\n"
      "  wall time                    %8.1f us (perf context on)\n"
      "  wall time, perf context off  %8.1f us\n"
      "  table iterators made         %8.1f us\n"
      "  seeks into children          %8.1f us (%.1f child seeks)\n"
      "  seek heap, next user entry   %8.1f us\n"
      "  memtable seeks               %8.1f us\n"
      "  block reads (cache misses)   %8.1f us (%.2f blocks, %.0f bytes)\n"
      "  block seeks                  %8.1f us\n"
      "  block cache hits             %8.2f (index %.2f, filter %.2f)\n"
      "  prefix filter: skipped %.2f files, passed %.2f\n"
      "  keys compared                %8.1f (%.1f deleted keys skipped)\n"
      "  seek CPU                     %8.1f us\n"
      "  tiles merged                 %8.2f\n",
      lookups, absl::GetFlag(FLAGS_batch), absl::GetFlag(FLAGS_first_rank),
      absl::GetFlag(FLAGS_first_rank) + absl::GetFlag(FLAGS_ranks) - 1,
      wall_us / n, plain_us / n, p.new_table_iterator_nanos / n / 1000,
      p.seek_child_seek_time / n / 1000, p.seek_child_seek_count / n,
      (p.seek_min_heap_time + p.find_next_user_entry_time) / n / 1000,
      p.seek_on_memtable_time / n / 1000, p.block_read_time / n / 1000,
      p.block_read_count / n, p.block_read_byte / n,
      p.block_seek_nanos / n / 1000, p.block_cache_hit_count / n,
      p.block_cache_index_hit_count / n, p.block_cache_filter_hit_count / n,
      p.bloom_sst_miss_count / n, p.bloom_sst_hit_count / n,
      p.user_key_comparison_count / n, p.internal_delete_skipped_count / n,
      p.iter_seek_cpu_nanos / n / 1000,
      (views.tiles_used() - tiles_before) / n);
  return 0;
}

}  // namespace
}  // namespace rawfeat

int main(int argc, char** argv) {
  return rawfeat::bench::RunTool(argc, argv, rawfeat::Main);
}
