// ViewEngine::Snapshot: every entity of a view or service, computed in one
// pass over its streams.

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "server/common/echo.h"
#include "server/common/hash.h"
#include "server/common/parallel.h"
#include "server/common/status_macros.h"
#include "server/common/time_util.h"
#include "server/views/columns.h"
#include "server/views/sweep.h"
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
  auto pinned = store_->PinRead(request.watermark());
  if (!pinned.ok()) return pinned.status();
  const uint64_t watermark = pinned->watermark;
  const ReadView* read_view = pinned->view.get();
  const size_t nt = times.size();

  // One chunk under construction per as-of time.
  std::vector<v1::SnapshotChunk> chunks(nt);
  std::vector<bool> sent(nt, false);
  bool names_sent = false;
  v1::SnapshotChunk piece;
  std::vector<v1::FeatureRow*> taken;
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
  // Sends time k's rows in chunks of about snapshot_chunk_bytes (at least
  // one chunk, even without rows).
  auto flush = [&](size_t k) {
    v1::SnapshotChunk& all = chunks[k];
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
        // allocated, so the next batch reuses them.
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
  // One entity cursor per worker and group (groups may read other streams).
  std::vector<std::vector<std::unique_ptr<EventCursor>>> cursors(
      std::max(1, options_.analyst_threads));
  for (auto& per_worker : cursors) per_worker.resize(groups.size());
  std::vector<Found> batch;
  // Entities per batch: a batch holds up to (entities x times) rows, and
  // about one chunk's bytes: its size follows the rows seen so far,
  // starting small.
  const size_t max_batch =
      std::clamp<size_t>(static_cast<size_t>(chunk_rows) * 32 / nt, 64,
                         static_cast<size_t>(std::max(chunk_rows, 64)));
  size_t batch_limit = 64;
  // Bytes of rows each worker computed in this batch (one counter per
  // worker: no shared cache line on the per-row path).
  std::vector<PaddedCount> worker_bytes(std::max(1, options_.analyst_threads));
  size_t rows_seen = 0, bytes_seen = 0;
  bool more = true;
  while (more) {
    if (cancelled()) return absl::CancelledError("snapshot cancelled");
    batch.clear();
    while (batch.size() < batch_limit) {
      RETURN_IF_ERROR(next_entity(&more));
      if (!more) break;
      const bool in_partition = InPartition(entity, pindex, pcount);
      size_t first = nt;
      for (const auto& scan : scans) {
        if (!scan->Valid() || scan->entity() != entity) continue;
        if (in_partition) {
          RETURN_IF_ERROR(first_visible(*scan, &first));
        } else {
          scan->NextEntity();
        }
      }
      // Part of every as-of time after its first event.
      if (first < nt) batch.push_back(Found{entity, first, {}});
    }
    if (batch.empty()) break;
    for (Found& f : batch) {
      for (size_t k = f.first_time; k < nt; ++k) {
        v1::FeatureRow* row = chunks[k].add_rows();
        row->set_entity(f.entity);
        f.rows.push_back(row);
      }
    }
    for (PaddedCount& c : worker_bytes) c.n = 0;
    RETURN_IF_ERROR(ParallelFor(
        batch.size(), options_.analyst_threads, [&](size_t i, int worker) {
          if (cancelled()) return absl::CancelledError("snapshot cancelled");
          Found& f = batch[i];
          const auto entity_times =
              absl::MakeConstSpan(times).subspan(f.first_time);
          for (size_t g = 0; g < groups.size(); ++g) {
            const FusedParts& group = groups[g];
            auto& cursor = cursors[worker][g];
            if (cursor == nullptr) {
              cursor = store_->NewEventCursor(group.view->stream->stream_id,
                                              read_view);
            }
            RETURN_IF_ERROR(
                SweepEntity(*group.view, cursor.get(), f.entity, entity_times,
                            watermark, [&](size_t j, auto* values) {
                              auto* row_values = f.rows[j]->mutable_values();
                              if (whole) {
                                row_values->Swap(values);
                                return;
                              }
                              while (row_values->size() < width)
                                row_values->Add();
                              for (const auto& [k, offset] : group.parts) {
                                int at = out_at[k];
                                for (int v : parts[k].take) {
                                  row_values->Mutable(at++)->Swap(
                                      values->Mutable(offset + v));
                                }
                              }
                            }));
          }
          for (v1::FeatureRow* row : f.rows) {
            const size_t bytes = row->ByteSizeLong();
            // One row must fit a message, and the batch must stay near
            // what the next chunks can carry.
            worker_bytes[worker].n += bytes;
            if (bytes > options_.max_response_bytes ||
                worker_bytes[worker].n > options_.max_response_bytes) {
              return absl::ResourceExhaustedError(
                  absl::StrCat("the row of entity '", Echo(f.entity), "' is ",
                               bytes, " bytes; snapshot rows of ", what,
                               " in flight would exceed the largest message "
                               "(--max_message_bytes ",
                               options_.max_response_bytes, ")"));
            }
          }
          return absl::OkStatus();
        }));
    rows_seen += batch.size() * nt;
    for (const PaddedCount& c : worker_bytes) bytes_seen += c.n;
    const size_t per_entity =
        std::max<size_t>(1, bytes_seen * nt / std::max<size_t>(1, rows_seen));
    batch_limit = std::clamp<size_t>(options_.snapshot_chunk_bytes / per_entity,
                                     1, max_batch);
    for (size_t k = 0; k < nt; ++k) {
      if (chunks[k].rows_size() > 0) RETURN_IF_ERROR(flush(k));
    }
  }
  // Every as-of time gets at least one chunk, even with no entity.
  for (size_t k = 0; k < nt; ++k) {
    if (!sent[k]) RETURN_IF_ERROR(flush(k));
  }
  return absl::OkStatus();
}

}  // namespace rawfeat
