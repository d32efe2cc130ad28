#include "server/views/join.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/common/parallel.h"
#include "server/common/status_macros.h"
#include "server/common/time_util.h"
#include "server/views/sweep.h"

namespace rawfeat {

absl::StatusOr<std::unique_ptr<JoinSession>> JoinSession::Start(
    const ViewEngine* engine, const v1::JoinFeaturesRequest& first,
    Options options) {
  auto view = engine->Resolve(first.view(), first.version());
  if (!view.ok()) return view.status();
  auto pinned = engine->store().PinRead(first.watermark());
  if (!pinned.ok()) return pinned.status();
  options.max_run_rows = std::max<size_t>(options.max_run_rows, 1);
  options.chunk_rows = std::max(options.chunk_rows, 1);
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
    if (!buffer_.empty() && buffer_.back().row.entity() != e) {
      // The previous entity's stretch of rows ended here.
      if (grouped_ && buffer_.size() >= options_.grouped_flush_rows) {
        RETURN_IF_ERROR(Flush(emit));
      } else if (grouped_) {
        finished_entities_.insert(buffer_.back().row.entity());
        if (finished_entities_.contains(e)) {
          grouped_ = false;
          finished_entities_.clear();
        }
      }
    }
    buffer_.push_back(Pending{index, *t, std::move(row)});
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
    groups[buffer_[i].row.entity()].push_back(static_cast<uint32_t>(i));
  }
  // Entities with the most labels first, so threads finish together.
  std::vector<std::pair<absl::string_view, std::vector<uint32_t>>> work(
      std::make_move_iterator(groups.begin()),
      std::make_move_iterator(groups.end()));
  groups.clear();
  std::sort(work.begin(), work.end(), [](const auto& a, const auto& b) {
    return a.second.size() > b.second.size();
  });
  std::vector<google::protobuf::RepeatedPtrField<v1::Value>> values(n);
  RETURN_IF_ERROR(
      ParallelFor(work.size(), options_.threads, [&](size_t g) {
        auto& [entity, rows] = work[g];
        std::sort(rows.begin(), rows.end(), [&](uint32_t a, uint32_t b) {
          const int64_t ta = buffer_[a].time_us, tb = buffer_[b].time_us;
          return ta != tb ? ta < tb : a < b;
        });
        std::vector<int64_t> times;
        times.reserve(rows.size());
        for (uint32_t r : rows) times.push_back(buffer_[r].time_us);
        return SweepEntity(*view_, *store_, entity, times, pinned_.watermark,
                           pinned_.view.get(),
                           [&](size_t j) { return &values[rows[j]]; });
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
    response.Clear();
    return s;
  };
  for (size_t i = 0; i < n; ++i) {
    Pending& p = buffer_[i];
    v1::JoinedRow* out = response.add_rows();
    out->set_row_index(p.index);
    out->set_allocated_entity(p.row.release_entity());
    out->set_allocated_time(p.row.release_time());
    out->mutable_passthrough()->Swap(p.row.mutable_passthrough());
    out->mutable_values()->Swap(&values[i]);
    if (response.rows_size() >= options_.chunk_rows) RETURN_IF_ERROR(send());
  }
  if (response.rows_size() > 0) RETURN_IF_ERROR(send());
  buffer_.clear();
  grouped_ = true;
  finished_entities_.clear();
  return absl::OkStatus();
}

}  // namespace rawfeat
