// ViewEngine::Snapshot: every entity of a view or service, computed in one
// pass over its streams.

#include <algorithm>
#include <atomic>
#include <deque>
#include <limits>
#include <memory>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/echo.h"
#include "server/common/hash.h"
#include "server/common/status_macros.h"
#include "server/common/thread_name.h"
#include "server/common/time_util.h"
#include "server/views/columns.h"
#include "server/views/sweep.h"
#include "server/views/tiles.h"
#include "server/views/view_engine.h"

namespace rawfeat {

absl::Status ViewEngine::Snapshot(const v1::SnapshotRequest& request,
                                  const SnapshotEmit& emit,
                                  const std::function<bool()>& cancelled,
                                  int chunk_rows) const {
  // What each row holds: one part per view read (a view snapshot is one
  // part taking every feature).
  std::vector<ServicePartView> parts;
  std::vector<std::string> feature_names;
  uint32_t version = 0;
  std::string what;  // for errors: "view 'v'" or "service 's'"
  if (!request.service().empty()) {
    if (!request.view().empty()) {
      return absl::InvalidArgumentError(
          "give a view or a service to snapshot, not both");
    }
    auto service = ResolveService(request.service(), request.service_version());
    if (!service.ok()) return service.status();
    for (const ServicePartView& part : service->parts) {
      if (part.key != service->parts[0].key) {
        return absl::InvalidArgumentError(absl::StrCat(
            "service '", request.service(), "' v", service->def->version(),
            " cannot be snapshotted: part 1 (view '",
            service->parts[0].view->def->name(), "') is keyed by '",
            service->parts[0].key, "' but part ",
            &part - service->parts.data() + 1, " (view '",
            part.view->def->name(), "') by '", part.key,
            "'; a snapshot lists the entities of one key column (use "
            "GetFeatures or JoinFeatures with rows of keys)"));
      }
    }
    feature_names = service->FeatureNames();
    version = service->def->version();
    what = absl::StrCat("service '", request.service(), "'");
    parts = std::move(service->parts);
  } else {
    auto view = Resolve(request.view(), request.version());
    if (!view.ok()) return view.status();
    for (const auto& f : (*view)->features) feature_names.push_back(f.name);
    version = (*view)->def->version();
    what = absl::StrCat("view '", request.view(), "'");
    parts.push_back({*std::move(view), "", "", {}});
  }
  // One part taking every feature: its values are swapped in whole.
  const bool whole = parts.size() == 1 && parts[0].take.empty();
  // Parts on one stream (all share the key) are swept together; each
  // part's values land at its place in the row.
  const std::vector<FusedParts> groups = FuseParts(parts);
  std::vector<int> out_at(parts.size());
  int width = 0;
  for (size_t k = 0; k < parts.size(); ++k) {
    out_at[k] = width;
    width += static_cast<int>(parts[k].take.size());
  }
  // The distinct streams the parts read, each scanned for entities.
  std::vector<uint32_t> stream_ids;
  for (const FusedParts& group : groups) {
    stream_ids.push_back(group.view->stream->stream_id);
  }
  RETURN_IF_ERROR(ValidatePartition(request.partition()));
  const uint32_t pindex = request.partition().index();
  const uint32_t pcount = request.partition().count();
  // The as-of times, ascending and distinct.
  std::vector<int64_t> times;
  if (request.as_of_times_size() > 0) {
    if (request.has_as_of()) {
      return absl::InvalidArgumentError("set as_of or as_of_times, not both");
    }
    if (request.as_of_times_size() > kMaxSnapshotTimes) {
      return absl::InvalidArgumentError(
          absl::StrCat(request.as_of_times_size(),
                       " as_of_times; the limit is ", kMaxSnapshotTimes));
    }
    for (const auto& ts : request.as_of_times()) {
      auto t = RequestTimeToMicros(ts, "as_of_times");
      if (!t.ok()) return t.status();
      times.push_back(*t);
    }
    std::sort(times.begin(), times.end());
    times.erase(std::unique(times.begin(), times.end()), times.end());
  } else {
    auto t = RequestAsOf(request);
    if (!t.ok()) return t.status();
    times.push_back(*t);
  }
  for (const ServicePartView& part : parts) {
    RETURN_IF_ERROR(
        CheckAsOf(*part.view, times.front(), EarliestAsOf(*part.view)));
  }
  auto pinned = store_->PinRead(request.watermark(), /*fill_cache=*/false);
  if (!pinned.ok()) return pinned.status();
  const uint64_t watermark = pinned->watermark;
  const ReadView* read_view = pinned->view.get();
  const size_t nt = times.size();

  bool names_sent = false;
  v1::SnapshotChunk piece;
  std::vector<v1::FeatureRow*> taken;
  // Whether time k has had a chunk yet (each gets at least one).
  std::vector<bool> sent(nt, false);
  auto header = [&](v1::SnapshotChunk* chunk, size_t k) {
    if (!names_sent) {
      for (const auto& name : feature_names) chunk->add_feature_names(name);
      names_sent = true;
    }
    chunk->set_watermark(watermark);
    chunk->set_version(version);
    *chunk->mutable_as_of() = MicrosToTimestamp(times[k]);
  };
  // Emits a chunk, as columns when asked.
  auto send = [&](v1::SnapshotChunk* chunk) {
    if (request.columnar()) {
      RETURN_IF_ERROR(SnapshotRowsToColumns(feature_names.size(), chunk));
    }
    return emit(chunk);
  };
  // Sends `all` (rows of time k) in chunks of about snapshot_chunk_bytes (at
  // least one chunk, even without rows).
  auto flush = [&](v1::SnapshotChunk& all, size_t k) {
    sent[k] = true;
    while (true) {
      size_t bytes = 0;
      int n = 0;
      while (n < all.rows_size() &&
             (n == 0 ||
              (bytes < options_.snapshot_chunk_bytes && n < chunk_rows))) {
        // Sized when the row was computed (ByteSizeLong caches it).
        bytes += static_cast<size_t>(all.rows(n).GetCachedSize());
        ++n;
      }
      if (n == all.rows_size()) {
        // The rest fits one chunk: sent in place. Clear keeps the rows
        // allocated, so a later batch reuses them.
        header(&all, k);
        RETURN_IF_ERROR(send(&all));
        all.Clear();
        return absl::OkStatus();
      }
      piece.Clear();
      header(&piece, k);
      taken.resize(static_cast<size_t>(n));
      all.mutable_rows()->ExtractSubrange(0, n, taken.data());
      for (v1::FeatureRow* row : taken) piece.mutable_rows()->AddAllocated(row);
      RETURN_IF_ERROR(send(&piece));
    }
  };

  // One total-order pass over each stream's keys finds the entities (one
  // Seek skips the rest of each) and each one's first visible event time;
  // the streams' entities are merged in byte order. Each batch of entities
  // is then swept by workers, with one entity cursor per worker, for every
  // as-of time after that first event.
  struct Found {
    std::string entity;
    size_t first_time = 0;  // index of the first as-of time it is part of
    std::vector<v1::FeatureRow*> rows;  // one per time from first_time on
    // Per group (stream), the entity's sole block as the finder read it:
    // (offset, size) in its batch's `blocks`; size 0: not copied.
    std::vector<std::pair<size_t, size_t>> sole;
  };
  const int64_t last_time = times.back();
  std::vector<std::unique_ptr<EventCursor>> scans;
  for (uint32_t id : stream_ids)
    scans.push_back(store_->ScanStream(id, read_view));
  // The smallest entity among the valid scans, or false when every scan is
  // done.
  std::string entity;
  auto next_entity = [&](bool* any) -> absl::Status {
    *any = false;
    for (const auto& scan : scans) {
      if (!scan->Valid()) {
        RETURN_IF_ERROR(scan->status());
        continue;
      }
      if (!*any || scan->entity() < entity) {
        entity = std::string(scan->entity());
      }
      *any = true;
    }
    return absl::OkStatus();
  };
  // Index of the first as-of time after the entity's earliest visible event
  // in `it` (times.size() when none is visible before the last time), and
  // moves the scan past the entity.
  auto first_visible = [&](EventCursor& it, size_t* first) -> absl::Status {
    for (; it.Valid(); it.Next()) {
      if (it.entity() != entity || it.time_us() >= last_time) break;
      if (it.seq() <= watermark) {  // usually the first event
        *first = std::min<size_t>(
            *first, std::upper_bound(times.begin(), times.end(), it.time_us()) -
                        times.begin());
        break;
      }
    }
    RETURN_IF_ERROR(it.status());
    if (it.Valid() && it.entity() == entity) it.NextEntity();
    return absl::OkStatus();
  };
  // This thread finds the entities in batches while `analyst_threads`
  // workers sweep the batches found before, up to kBatchesInFlight at once.
  // Workers take one entity at a time from the oldest batch that has one
  // left, so a heavy entity holds one worker, not the others. A batch is
  // sent, in entity order, as soon as all of its entities are swept.
  struct Batch {
    std::vector<Found> found;
    // Copies of the sole blocks the finder read (Found::sole): most
    // entities have one block, and a worker that sweeps one from the copy
    // reads nothing from the store, where it would read and decompress the
    // table block the finder just read once more.
    std::string blocks;
    std::vector<v1::SnapshotChunk> chunks;  // its rows, one chunk per time
    size_t handed = 0;  // entities given to workers
    size_t swept = 0;   // entities done
    size_t bytes = 0;   // bytes of the rows done
  };
  // Computes the rows of one entity with one worker's cursors; adds their
  // bytes to *bytes.
  auto sweep = [&](Found& f, absl::string_view blocks,
                   std::vector<std::unique_ptr<EventCursor>>* cursors,
                   std::vector<SweepScratch>* scratches,
                   std::vector<v1::FeatureRow>* tiled_rows,
                   size_t* bytes) -> absl::Status {
    const auto entity_times = absl::MakeConstSpan(times).subspan(f.first_time);
    for (size_t g = 0; g < groups.size(); ++g) {
      const FusedParts& group = groups[g];
      auto& cursor = (*cursors)[g];
      if (cursor == nullptr) {
        // A worker sweeps runs of consecutive entities: from one to the
        // next the cursor steps instead of seeking.
        cursor = store_->NewAscendingCursor(group.view->stream->stream_id,
                                            read_view);
      }
      if (g < f.sole.size() && f.sole[g].second > 0) {
        cursor->Prime(f.entity,
                      blocks.substr(f.sole[g].first, f.sole[g].second));
      }
      // Moves the values of time j (aligned with the group's features)
      // into their places in the entity's row.
      auto place = [&](size_t j, google::protobuf::RepeatedPtrField<v1::Value>*
                                     values) {
        auto* row_values = f.rows[j]->mutable_values();
        if (whole) {
          row_values->Swap(values);
          return;
        }
        while (row_values->size() < width) row_values->Add();
        for (const auto& [k, offset] : group.parts) {
          int at = out_at[k];
          for (int v : parts[k].take) {
            row_values->Mutable(at++)->Swap(values->Mutable(offset + v));
          }
        }
      };
      // One as-of time of one view, for an entity with tiles (a heavy
      // one): the lookup's path, which takes whole days from tiles instead
      // of scanning their events, with the same values (ComputeEntity and
      // SweepEntity agree bit for bit). It queues no tiles: a snapshot is
      // no reason to build them.
      if (entity_times.size() == 1 && group.parts.size() == 1 &&
          options_.tiles &&
          store_->MayHaveTiles(TileScopeOf(*group.view, f.entity))) {
        v1::FeatureRow& row = (*tiled_rows)[g];
        row.Clear();
        std::atomic<size_t> unlimited{std::numeric_limits<size_t>::max()};
        RETURN_IF_ERROR(ComputeEntity(*group.view, f.entity, entity_times[0],
                                      watermark, read_view, cursor.get(), &row,
                                      &unlimited, /*queue_tiles=*/false));
        place(0, row.mutable_values());
        continue;
      }
      RETURN_IF_ERROR(SweepEntity(*group.view, cursor.get(), f.entity,
                                  entity_times, watermark, place,
                                  &(*scratches)[g]));
    }
    for (v1::FeatureRow* row : f.rows) {
      const size_t row_bytes = row->ByteSizeLong();
      if (row_bytes > options_.max_response_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "the row of entity '", Echo(f.entity), "' is ", row_bytes,
            " bytes; a snapshot row of ", what,
            " must fit the largest message (--max_message_bytes ",
            options_.max_response_bytes, ")"));
      }
      *bytes += row_bytes;
    }
    return absl::OkStatus();
  };
  constexpr size_t kBatchesInFlight = 3;
  // Most bytes of blocks a batch copies (Batch::blocks), and of one block.
  constexpr size_t kCopiedBlockBytes = 8 << 20;
  constexpr size_t kMaxCopiedBlock = 256 << 10;
  // Most consecutive entities of a batch a worker takes at once.
  constexpr size_t kRunMax = 16;
  absl::Mutex mu;
  absl::CondVar changed;  // a batch queued or swept, or an error
  std::deque<std::unique_ptr<Batch>> queue;  // in entity order; guarded by mu
  bool found_all = false;                    // guarded by mu
  bool stop = false;                         // guarded by mu
  absl::Status failed;                       // guarded by mu
  const int n_workers = std::max(1, options_.analyst_threads);
  const size_t batch_max_bytes =
      options_.max_response_bytes * static_cast<size_t>(n_workers);
  auto work = [&]() {
    // One entity cursor per group (groups may read other streams).
    std::vector<std::unique_ptr<EventCursor>> cursors(groups.size());
    std::vector<SweepScratch> scratches(groups.size());
    std::vector<v1::FeatureRow> tiled_rows(groups.size());
    absl::MutexLock l(&mu);
    while (true) {
      Batch* b = nullptr;
      while (!stop) {
        for (const auto& q : queue) {
          if (q->handed < q->found.size()) {
            b = q.get();
            break;
          }
        }
        if (b != nullptr || found_all) break;
        changed.Wait(&mu);
      }
      if (b == nullptr) return;  // stopped, or nothing is left
      // A run of consecutive entities (its cursors step from one to the
      // next), shorter towards the batch's end so the workers finish it
      // together. A heavy entity still holds one worker: the others take
      // the runs after it.
      const size_t left = b->found.size() - b->handed;
      const size_t run = std::clamp<size_t>(
          left / (2 * static_cast<size_t>(n_workers)), 1, kRunMax);
      const size_t begin = b->handed;
      b->handed += run;
      const size_t before = b->bytes;  // the batch's rows done before
      size_t bytes = 0;
      absl::Status s;
      mu.Unlock();
      // A batch is sized to about a chunk from the rows seen before; should
      // its rows weigh far more, memory stays bounded: a message's bytes
      // per worker (checked after every row).
      auto too_big = [&](size_t done, size_t total, absl::string_view last) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "snapshot rows of ", what, " computed at once (", done,
            " entities up to '", Echo(last), "') are ", total,
            " bytes, more than ", batch_max_bytes, " (--max_message_bytes ",
            options_.max_response_bytes, " per worker)"));
      };
      for (size_t i = begin; i < begin + run && s.ok(); ++i) {
        if (cancelled()) {
          s = absl::CancelledError("snapshot cancelled");
          break;
        }
        s = sweep(b->found[i], b->blocks, &cursors, &scratches, &tiled_rows,
                  &bytes);
        if (s.ok() && before + bytes > batch_max_bytes) {
          s = too_big(i + 1, before + bytes, b->found[i].entity);
        }
      }
      mu.Lock();
      b->bytes += bytes;
      b->swept += run;
      if (s.ok() && b->bytes > batch_max_bytes) {
        s = too_big(b->swept, b->bytes, b->found[begin + run - 1].entity);
      }
      if (!s.ok() && failed.ok()) {
        failed = std::move(s);
        stop = true;
      }
      // Only a finished batch or an error is news to anyone.
      if (stop || b->swept == b->found.size()) changed.SignalAll();
    }
  };
  std::vector<std::thread> workers;
  auto join = absl::MakeCleanup([&] {
    {
      absl::MutexLock l(&mu);
      stop = true;
      changed.SignalAll();
    }
    for (std::thread& t : workers) t.join();
  });
  for (int w = 0; w < n_workers; ++w) {
    workers.emplace_back([&work] {
      NameThisThread("rf-snapshot");
      work();
    });
  }

  // Entities per batch: a batch holds up to (entities x times) rows, and
  // about one chunk's bytes: its size follows the rows seen so far,
  // starting small.
  const size_t max_batch =
      std::clamp<size_t>(static_cast<size_t>(chunk_rows) * 32 / nt, 64,
                         static_cast<size_t>(std::max(chunk_rows, 64)));
  size_t batch_limit = 64;
  size_t rows_seen = 0, bytes_seen = 0;
  // Sent batches, kept for their allocated rows.
  std::vector<std::unique_ptr<Batch>> spare;
  bool more = true;
  while (true) {
    if (cancelled()) return absl::CancelledError("snapshot cancelled");
    size_t in_flight;
    {
      absl::MutexLock l(&mu);
      if (!failed.ok()) return failed;
      in_flight = queue.size();
    }
    if (more && in_flight < kBatchesInFlight) {
      std::unique_ptr<Batch> b;
      if (spare.empty()) {
        b = std::make_unique<Batch>();
        b->chunks.resize(nt);
      } else {
        b = std::move(spare.back());
        spare.pop_back();
      }
      b->found.clear();
      b->blocks.clear();
      b->handed = b->swept = b->bytes = 0;
      std::vector<std::pair<size_t, size_t>> sole(scans.size());
      while (b->found.size() < batch_limit) {
        RETURN_IF_ERROR(next_entity(&more));
        if (!more) break;
        const bool in_partition = InPartition(entity, pindex, pcount);
        size_t first = nt;
        const size_t blocks_before = b->blocks.size();
        for (size_t g = 0; g < scans.size(); ++g) {
          EventCursor& scan = *scans[g];
          sole[g] = {0, 0};
          if (!scan.Valid() || scan.entity() != entity) continue;
          if (!in_partition) {
            scan.NextEntity();
            continue;
          }
          const absl::string_view block = scan.SoleBlock();
          if (!block.empty() && block.size() <= kMaxCopiedBlock &&
              b->blocks.size() + block.size() <= kCopiedBlockBytes) {
            sole[g] = {b->blocks.size(), block.size()};
            b->blocks.append(block.data(), block.size());
          }
          RETURN_IF_ERROR(first_visible(scan, &first));
        }
        // Part of every as-of time after its first event.
        if (first < nt) {
          b->found.push_back(Found{entity, first, {}, sole});
        } else {
          b->blocks.resize(blocks_before);
        }
      }
      for (Found& f : b->found) {
        f.rows.clear();
        for (size_t k = f.first_time; k < nt; ++k) {
          v1::FeatureRow* row = b->chunks[k].add_rows();
          row->set_entity(f.entity);
          f.rows.push_back(row);
        }
      }
      absl::MutexLock l(&mu);
      if (!b->found.empty()) queue.push_back(std::move(b));
      found_all = !more;
      changed.SignalAll();
      continue;
    }
    // Wait for the oldest batch to be swept, then send it.
    std::unique_ptr<Batch> done;
    {
      absl::MutexLock l(&mu);
      while (failed.ok() && !queue.empty() &&
             queue.front()->swept < queue.front()->found.size()) {
        // Woken at least every 50 ms to see a cancelled call.
        changed.WaitWithTimeout(&mu, absl::Milliseconds(50));
        if (cancelled()) return absl::CancelledError("snapshot cancelled");
      }
      if (!failed.ok()) return failed;
      if (queue.empty()) break;  // every batch found is sent
      done = std::move(queue.front());
      queue.pop_front();
    }
    rows_seen += done->found.size() * nt;
    bytes_seen += done->bytes;
    const size_t per_entity =
        std::max<size_t>(1, bytes_seen * nt / std::max<size_t>(1, rows_seen));
    batch_limit = std::clamp<size_t>(options_.snapshot_chunk_bytes / per_entity,
                                     1, max_batch);
    for (size_t k = 0; k < nt; ++k) {
      if (done->chunks[k].rows_size() > 0) {
        RETURN_IF_ERROR(flush(done->chunks[k], k));
      }
    }
    spare.push_back(std::move(done));
  }
  // Every as-of time gets at least one chunk, even with no entity.
  for (size_t k = 0; k < nt; ++k) {
    if (!sent[k]) {
      v1::SnapshotChunk empty;
      RETURN_IF_ERROR(flush(empty, k));
    }
  }
  return absl::OkStatus();
}

}  // namespace rawfeat
