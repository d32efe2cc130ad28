#include "server/views/join.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/common/coding.h"
#include "server/common/parallel.h"
#include "server/common/status_macros.h"
#include "server/common/time_util.h"
#include "server/views/sweep.h"

namespace rawfeat {
namespace {

// The wire tag of JoinedRow.values (field 5, length-delimited).
static_assert(v1::JoinedRow::kValuesFieldNumber == 5, "wire tag below");
constexpr char kValuesTag = (5 << 3) | 2;

}  // namespace

absl::StatusOr<std::unique_ptr<JoinSession>> JoinSession::Start(
    const ViewEngine* engine, const v1::JoinFeaturesRequest& first,
    Options options) {
  auto view = engine->Resolve(first.view(), first.version());
  if (!view.ok()) return view.status();
  auto pinned = engine->store().PinRead(first.watermark());
  if (!pinned.ok()) return pinned.status();
  options.max_run_rows = std::max<size_t>(options.max_run_rows, 1);
  options.chunk_rows = std::max(options.chunk_rows, 1);
  options.threads = std::max(options.threads, 1);
  return std::unique_ptr<JoinSession>(new JoinSession(
      *std::move(view), *std::move(pinned), &engine->store(), options));
}

absl::Status JoinSession::Add(v1::JoinFeaturesRequest* message,
                              const Emit& emit) {
  for (v1::LabelRow& row : *message->mutable_rows()) {
    const uint64_t index = next_index_++;
    const std::string& e = row.entity();
    if (e.empty() || e.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label row ", index, ": entity is empty or contains NUL"));
    }
    if (!row.has_time()) {
      return absl::InvalidArgumentError(
          absl::StrCat("label row ", index, ": time is missing"));
    }
    auto t = RequestTimeToMicros(row.time(), "time");
    if (!t.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("label row ", index, ": ", t.status().message()));
    }
    if (!buffer_.empty() && buffer_.back().entity != e) {
      // The previous entity's stretch of rows ended here.
      if (grouped_ && buffer_.size() >= options_.grouped_flush_rows) {
        RETURN_IF_ERROR(Flush(emit));
      } else if (grouped_) {
        finished_entities_.insert(buffer_.back().entity);
        if (finished_entities_.contains(e)) {
          grouped_ = false;
          finished_entities_.clear();
        }
      }
    }
    Pending& p = buffer_.emplace_back();
    p.index = index;
    p.time_us = *t;
    p.entity = std::move(*row.mutable_entity());
    p.passthrough.reserve(row.passthrough_size());
    for (std::string& cell : *row.mutable_passthrough()) {
      p.passthrough.push_back(std::move(cell));
    }
    if (buffer_.size() >= options_.max_run_rows) RETURN_IF_ERROR(Flush(emit));
  }
  return absl::OkStatus();
}

absl::Status JoinSession::Finish(const Emit& emit) {
  RETURN_IF_ERROR(Flush(emit));
  if (!sent_header_) {
    v1::JoinFeaturesResponse response;
    for (const auto& f : view_->features) response.add_feature_names(f.name);
    response.set_watermark(pinned_.watermark);
    response.set_version(view_->def->version());
    sent_header_ = true;
    return emit(&response);
  }
  return absl::OkStatus();
}

absl::Status JoinSession::Flush(const Emit& emit) {
  const size_t n = buffer_.size();
  if (n == 0) return absl::OkStatus();
  // Group rows by entity (any entity order will do), then each group by
  // time (then input order).
  absl::flat_hash_map<absl::string_view, std::vector<uint32_t>> groups;
  for (size_t i = 0; i < n; ++i) {
    groups[buffer_[i].entity].push_back(static_cast<uint32_t>(i));
  }
  // Entities with the most labels first, so threads finish together.
  std::vector<std::pair<absl::string_view, std::vector<uint32_t>>> work(
      std::make_move_iterator(groups.begin()),
      std::make_move_iterator(groups.end()));
  groups.clear();
  std::sort(work.begin(), work.end(), [](const auto& a, const auto& b) {
    return a.second.size() > b.second.size();
  });
  // Each row's values are kept as JoinedRow wire bytes (field 5), ~60
  // bytes a row instead of eight heap messages, and parsed into the
  // response only when their chunk is sent.
  std::vector<std::string> encoded(n);
  std::vector<std::unique_ptr<EventIterator>> cursors(options_.threads);
  RETURN_IF_ERROR(
      ParallelFor(work.size(), options_.threads, [&](size_t g, int worker) {
        auto& cursor = cursors[worker];
        if (cursor == nullptr) {
          cursor = store_->NewEntityCursor(pinned_.view.get());
        }
        auto& [entity, rows] = work[g];
        std::sort(rows.begin(), rows.end(), [&](uint32_t a, uint32_t b) {
          const int64_t ta = buffer_[a].time_us, tb = buffer_[b].time_us;
          return ta != tb ? ta < tb : a < b;
        });
        std::vector<int64_t> times;
        times.reserve(rows.size());
        for (uint32_t r : rows) times.push_back(buffer_[r].time_us);
        return SweepEntity(
            *view_, cursor.get(), entity, times, pinned_.watermark,
            [&](size_t j, auto* values) {
              std::string& bytes = encoded[rows[j]];
              for (const v1::Value& v : *values) {
                bytes.push_back(kValuesTag);
                PutVarint64(&bytes, v.ByteSizeLong());
                v.AppendToString(&bytes);
              }
            });
      }));

  v1::JoinFeaturesResponse response;
  auto send = [&]() {
    if (!sent_header_) {
      for (const auto& f : view_->features) response.add_feature_names(f.name);
      sent_header_ = true;
    }
    response.set_watermark(pinned_.watermark);
    response.set_version(view_->def->version());
    absl::Status s = emit(&response);
    response.Clear();  // keeps the row objects for the next chunk
    return s;
  };
  for (size_t i = 0; i < n; ++i) {
    Pending& p = buffer_[i];
    v1::JoinedRow* row = response.add_rows();
    if (!row->MergeFromString(encoded[i])) {
      return absl::InternalError("join: cannot decode computed values");
    }
    std::string().swap(encoded[i]);
    row->set_row_index(p.index);
    row->set_entity(std::move(p.entity));
    *row->mutable_time() = MicrosToTimestamp(p.time_us);
    for (std::string& cell : p.passthrough) {
      row->add_passthrough(std::move(cell));
    }
    if (response.rows_size() >= options_.chunk_rows) RETURN_IF_ERROR(send());
  }
  if (response.rows_size() > 0) RETURN_IF_ERROR(send());
  buffer_.clear();
  grouped_ = true;
  finished_entities_.clear();
  return absl::OkStatus();
}

}  // namespace rawfeat
