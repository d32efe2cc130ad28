#include "server/views/join.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/coding.h"
#include "server/common/echo.h"
#include "server/common/parallel.h"
#include "server/common/status_macros.h"
#include "server/common/time_util.h"
#include "server/common/wire.h"
#include "server/views/columns.h"
#include "server/views/sweep.h"

namespace rawfeat {
namespace {

// Appends a JoinedRow's fields before its values; `values_size` is the
// size of the values that follow (for one exact reservation: a million
// rows wait as these strings, so no slack).
// The JoinedRow wire size of a row whose `values` fields take
// `values_size` bytes.
size_t RowSize(uint64_t index, absl::string_view entity, int64_t time_us,
               absl::string_view passthrough, size_t values_size) {
  return (index != 0 ? 1 + wire::VarintSize(index) : 0) +
         wire::LenFieldSize(entity.size()) +
         wire::LenFieldSize(wire::TimestampParts(time_us).BodySize()) +
         passthrough.size() + values_size;
}

// Appends a JoinedRow's fields before its values (index, entity, time,
// and the passthrough fields, already wire bytes).
void EncodeRowHeader(uint64_t index, absl::string_view entity, int64_t time_us,
                     absl::string_view passthrough, std::string* out) {
  if (index != 0) {
    wire::PutVarintField(out, v1::JoinedRow::kRowIndexFieldNumber, index);
  }
  wire::PutBytesField(out, v1::JoinedRow::kEntityFieldNumber, entity);
  wire::PutTimestampField(out, v1::JoinedRow::kTimeFieldNumber, time_us);
  out->append(passthrough.data(), passthrough.size());
}

// The wire size of a Value message (a oneof member is written even when it
// is zero); lists are sized by protobuf.
size_t ValueBodySize(const v1::Value& v) {
  switch (v.kind_case()) {
    case v1::Value::KIND_NOT_SET:
      return 0;
    case v1::Value::kInt64Value:
      return 1 + wire::VarintSize(static_cast<uint64_t>(v.int64_value()));
    case v1::Value::kDoubleValue:
      return 1 + 8;
    case v1::Value::kBoolValue:
      return 2;
    case v1::Value::kStringValue:
      return wire::LenFieldSize(v.string_value().size());
    default:
      return v.ByteSizeLong();
  }
}

// Appends one value as a JoinedRow `values` field, byte for byte what
// protobuf writes.
void EncodeValue(const v1::Value& v, std::string* out) {
  out->push_back(static_cast<char>(
      wire::Tag(v1::JoinedRow::kValuesFieldNumber, wire::kLen)));
  switch (v.kind_case()) {
    case v1::Value::KIND_NOT_SET:
      out->push_back(0);
      return;
    case v1::Value::kInt64Value: {
      const uint64_t i = static_cast<uint64_t>(v.int64_value());
      PutVarint64(out, 1 + wire::VarintSize(i));
      wire::PutVarintField(out, v1::Value::kInt64ValueFieldNumber, i);
      return;
    }
    case v1::Value::kDoubleValue: {
      out->push_back(9);
      out->push_back(static_cast<char>(
          wire::Tag(v1::Value::kDoubleValueFieldNumber, wire::kFixed64)));
      uint64_t bits;
      const double d = v.double_value();
      std::memcpy(&bits, &d, sizeof(bits));
      for (int i = 0; i < 8; ++i) {
        out->push_back(static_cast<char>(bits >> (8 * i)));
      }
      return;
    }
    case v1::Value::kBoolValue:
      out->push_back(2);
      wire::PutVarintField(out, v1::Value::kBoolValueFieldNumber,
                           v.bool_value() ? 1 : 0);
      return;
    case v1::Value::kStringValue:
      PutVarint64(out, wire::LenFieldSize(v.string_value().size()));
      wire::PutBytesField(out, v1::Value::kStringValueFieldNumber,
                          v.string_value());
      return;
    default:
      PutVarint64(out, v.ByteSizeLong());
      v.AppendToString(out);
      return;
  }
}

// Appends one computed row as JoinedRow wire bytes.
void EncodeRow(uint64_t index, absl::string_view entity, int64_t time_us,
               absl::string_view passthrough,
               const google::protobuf::RepeatedPtrField<v1::Value>& values,
               std::string* out) {
  size_t values_size = 0;
  for (const v1::Value& v : values) {
    values_size += wire::LenFieldSize(ValueBodySize(v));
  }
  out->reserve(out->size() +
               RowSize(index, entity, time_us, passthrough, values_size));
  EncodeRowHeader(index, entity, time_us, passthrough, out);
  for (const v1::Value& v : values) EncodeValue(v, out);
}

}  // namespace

absl::string_view JoinSession::ByteBlocks::Add(absl::string_view bytes) {
  if (blocks_.empty() || bytes.size() > capacity_ - used_) {
    capacity_ = std::max(kBlockBytes, bytes.size());
    blocks_.emplace_back(new char[capacity_]);
    used_ = 0;
  }
  char* at = blocks_.back().get() + used_;
  std::memcpy(at, bytes.data(), bytes.size());
  used_ += bytes.size();
  return absl::string_view(at, bytes.size());
}

void JoinSession::ByteBlocks::Clear() {
  blocks_.clear();
  capacity_ = 0;
  used_ = 0;
}

absl::StatusOr<std::unique_ptr<JoinSession>> JoinSession::Start(
    const ViewEngine* engine, const v1::JoinFeaturesRequest& first,
    Options options) {
  // A view, or a service's parts (each its view, key and features).
  std::shared_ptr<const CompiledView> view;
  ResolvedService service;
  if (!first.service().empty()) {
    if (!first.view().empty()) {
      return absl::InvalidArgumentError(
          "give a view or a service to join with, not both");
    }
    auto resolved =
        engine->ResolveService(first.service(), first.service_version());
    if (!resolved.ok()) return resolved.status();
    service = *std::move(resolved);
  } else {
    auto resolved = engine->Resolve(first.view(), first.version());
    if (!resolved.ok()) return resolved.status();
    view = *std::move(resolved);
  }
  auto pinned =
      engine->store().PinRead(first.watermark(), /*fill_cache=*/false);
  if (!pinned.ok()) return pinned.status();
  options.max_run_rows = std::max<size_t>(options.max_run_rows, 1);
  options.chunk_rows = std::max(options.chunk_rows, 1);
  options.threads = std::max(options.threads, 1);
  std::unique_ptr<JoinSession> session(new JoinSession(
      std::move(view), *std::move(pinned), &engine->store(), options));
  if (!service.parts.empty()) {
    RETURN_IF_ERROR(session->BindKeys(service, first));
  }
  // Retention: the earliest label time every part can answer.
  if (session->view_ != nullptr) {
    session->earliest_ = engine->EarliestAsOf(*session->view_);
    session->earliest_view_ = session->view_.get();
  }
  for (const ServicePartView& part : service.parts) {
    const int64_t earliest = engine->EarliestAsOf(*part.view);
    if (session->earliest_view_ == nullptr || earliest > session->earliest_) {
      session->earliest_ = earliest;
      session->earliest_view_ = part.view.get();
    }
  }
  session->fused_ = FuseParts(service.parts);
  session->service_ = std::move(service);
  session->columnar_ = first.columnar();
  return session;
}

absl::Status JoinSession::BindKeys(const ResolvedService& service,
                                   const v1::JoinFeaturesRequest& first) {
  for (const ServicePartView& part : service.parts) {
    if (std::find(key_columns_.begin(), key_columns_.end(), part.key) ==
        key_columns_.end()) {
      key_columns_.push_back(part.key);
    }
  }
  if (first.key_columns().empty()) return absl::OkStatus();
  const std::string want = absl::StrJoin(key_columns_, ", ");
  if (first.key_columns_size() != static_cast<int>(key_columns_.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("key_columns must name the service's key columns (", want,
                     "); got ", absl::StrJoin(first.key_columns(), ", ")));
  }
  for (const std::string& column : key_columns_) {
    auto it = std::find(first.key_columns().begin(), first.key_columns().end(),
                        column);
    if (it == first.key_columns().end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("key_columns lacks '", column,
                       "' (the service's key columns are ", want, ")"));
    }
    value_at_.push_back(static_cast<int>(it - first.key_columns().begin()));
  }
  return absl::OkStatus();
}

absl::Status JoinSession::Add(v1::JoinFeaturesRequest* message,
                              const Emit& emit) {
  if (message->has_labels()) return AddLabels(*message, emit);
  for (v1::LabelRow& row : *message->mutable_rows()) {
    const uint64_t index = next_index_;
    if (!row.has_time()) {
      return absl::InvalidArgumentError(
          absl::StrCat("label row ", index, ": time is missing"));
    }
    auto t = RequestTimeToMicros(row.time(), "time");
    if (!t.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("label row ", index, ": ", t.status().message()));
    }
    if (columnar_ && row.passthrough_size() > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label row ", index,
          ": has passthrough cells, which a columnar join does not echo"));
    }
    scratch_.clear();
    for (const std::string& cell : row.passthrough()) {
      wire::PutBytesField(&scratch_, v1::JoinedRow::kPassthroughFieldNumber,
                          cell);
    }
    RETURN_IF_ERROR(AddRow(row.entity(), *t, scratch_, emit,
                           [&](Pending* p) { return TakeKeys(row, p); }));
  }
  return absl::OkStatus();
}

absl::Status JoinSession::AddLabels(const v1::JoinFeaturesRequest& message,
                                    const Emit& emit) {
  const v1::LabelColumns& labels = message.labels();
  const bool service = !service_.parts.empty();
  const size_t n = static_cast<size_t>(labels.times_us_size());
  const size_t k = value_at_.size();
  std::string problem;
  if (message.rows_size() > 0) {
    problem = "carries both rows and labels";
  } else if (service && k == 0) {
    problem = "labels of a service join need key_columns in the first message";
  } else if (service &&
             (labels.entities_size() > 0 ||
              static_cast<size_t>(labels.key_values_size()) != n * k)) {
    problem = absl::StrCat("labels have ", labels.key_values_size(),
                           " key_values for ", n, " times and ", k,
                           " key_columns (and ", labels.entities_size(),
                           " entities, which a service join does not take)");
  } else if (!service && (labels.entities_size() != static_cast<int>(n) ||
                          labels.key_values_size() > 0)) {
    problem = absl::StrCat("labels have ", labels.entities_size(),
                           " entities for ", n, " times",
                           labels.key_values_size() > 0
                               ? " (and key_values, which a view join does "
                                 "not take)"
                               : "");
  }
  if (!problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the message of label rows from ", next_index_, ": ", problem));
  }
  for (size_t i = 0; i < n; ++i) {
    const int64_t t = labels.times_us(static_cast<int>(i));
    if (t < kMinMicros || t > kMaxMicros) {
      return absl::InvalidArgumentError(
          absl::StrCat("label row ", next_index_, ": time ", t,
                       " us is outside 0001-01-01..9999-12-31"));
    }
    const absl::string_view entity =
        service ? absl::string_view() : labels.entities(static_cast<int>(i));
    RETURN_IF_ERROR(AddRow(entity, t, "", emit, [&](Pending* p) {
      p->keys = keys_.size();
      for (int at : value_at_) {
        keys_.push_back(labels.key_values(static_cast<int>(i * k) + at));
      }
      return CopyKeys(p);
    }));
  }
  return absl::OkStatus();
}

absl::Status JoinSession::AddRow(
    absl::string_view entity, int64_t time_us, absl::string_view passthrough,
    const Emit& emit, absl::FunctionRef<absl::Status(Pending*)> take_keys) {
  // A service join (service_) reads each part's key from the row and answers
  // rows when a run fills or the input ends; a view join reads the entity
  // and also answers grouped input early.
  const bool service = !service_.parts.empty();
  const uint64_t index = next_index_++;
  if (time_us < earliest_) {
    return ViewEngine::CheckAsOf(*earliest_view_, time_us, earliest_,
                                 absl::StrCat("label row ", index, ": "));
  }
  if (!service &&
      (entity.empty() || entity.find('\0') != absl::string_view::npos)) {
    return absl::InvalidArgumentError(
        absl::StrCat("label row ", index, ": entity is empty or contains NUL"));
  }
  if (!service && !buffer_.empty() && buffer_.back().entity != entity) {
    // The previous entity's stretch of rows ended here.
    if (grouped_ && buffer_.size() >= options_.grouped_flush_rows) {
      RETURN_IF_ERROR(Flush(emit));
    } else if (grouped_) {
      finished_entities_.insert(std::string(buffer_.back().entity));
      if (finished_entities_.contains(entity)) {
        grouped_ = false;
        finished_entities_.clear();
      }
    }
  }
  Pending& p = buffer_.emplace_back();
  p.index = index;
  p.time_us = time_us;
  p.entity = input_.Add(entity);
  p.passthrough = input_.Add(passthrough);
  if (service) RETURN_IF_ERROR(take_keys(&p));
  if (buffer_.size() >= options_.max_run_rows) RETURN_IF_ERROR(Flush(emit));
  return absl::OkStatus();
}

absl::Status JoinSession::TakeKeys(const v1::LabelRow& row, Pending* p) {
  p->keys = keys_.size();
  if (!value_at_.empty()) {
    if (row.key_values_size() != static_cast<int>(value_at_.size()) ||
        !row.keys().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("label row ", p->index, ": has ", row.key_values_size(),
                       " key_values for ", value_at_.size(), " key_columns",
                       row.keys().empty() ? "" : ", and keys by name"));
    }
    for (int at : value_at_) keys_.push_back(row.key_values(at));
  } else {
    if (row.key_values_size() > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("label row ", p->index,
                       ": key_values need key_columns in the first message"));
    }
    for (const std::string& column : key_columns_) {
      auto it = row.keys().find(column);
      keys_.push_back(it == row.keys().end() ? absl::string_view()
                                             : absl::string_view(it->second));
    }
  }
  return CopyKeys(p);
}

absl::Status JoinSession::CopyKeys(Pending* p) {
  for (size_t c = 0; c < key_columns_.size(); ++c) {
    absl::string_view& key = keys_[p->keys + c];
    if (key.find('\0') != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("label row ", p->index, ": key '", Echo(key_columns_[c]),
                       "' contains NUL"));
    }
    key = input_.Add(key);  // the row's message goes away
  }
  return absl::OkStatus();
}

absl::Status JoinSession::Finish(const Emit& emit) {
  RETURN_IF_ERROR(Flush(emit));
  if (!sent_header_) {
    std::string response;
    return Send(&response, emit);
  }
  return absl::OkStatus();
}

absl::Status JoinSession::Send(std::string* response, const Emit& emit) {
  if (!sent_header_) {
    if (service_.parts.empty()) {
      for (const auto& f : view_->features) {
        wire::PutBytesField(response,
                            v1::JoinFeaturesResponse::kFeatureNamesFieldNumber,
                            f.name);
      }
    } else {
      for (const std::string& name : service_.FeatureNames()) {
        wire::PutBytesField(
            response, v1::JoinFeaturesResponse::kFeatureNamesFieldNumber, name);
      }
    }
    sent_header_ = true;
  }
  wire::PutVarintField(response,
                       v1::JoinFeaturesResponse::kWatermarkFieldNumber,
                       pinned_.watermark);
  wire::PutVarintField(
      response, v1::JoinFeaturesResponse::kVersionFieldNumber,
      service_.parts.empty() ? view_->def->version() : service_.def->version());
  absl::Status s = emit(response);
  response->clear();
  return s;
}

absl::Status JoinSession::CheckRowSize(const Pending& p,
                                       absl::string_view label,
                                       absl::string_view value, size_t bytes,
                                       PaddedCount* worker_bytes) const {
  worker_bytes->n += bytes;
  if (bytes <= options_.max_response_bytes &&
      worker_bytes->n <= options_.max_run_bytes) {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "label row ", p.index, " (", label, " '", Echo(value), "') is ", bytes,
      " bytes; the answers would exceed ",
      bytes > options_.max_response_bytes
          ? absl::StrCat("the largest message (--max_message_bytes ",
                         options_.max_response_bytes, ")")
          : absl::StrCat(options_.max_run_bytes,
                         " bytes held at once (send fewer label rows, or "
                         "lower --join_run_rows)")));
}

absl::Status JoinSession::SweepBy(const CompiledView& view, const KeyOf& key_of,
                                  const RowSink& sink) {
  // Group rows by key (any order will do), then each group by time (then
  // input order). Keys view the rows' strings, which stay until the run is
  // answered.
  absl::flat_hash_map<absl::string_view, std::vector<uint32_t>> groups;
  for (size_t i = 0; i < buffer_.size(); ++i) {
    const absl::string_view key = key_of(buffer_[i]);
    if (!key.empty()) groups[key].push_back(static_cast<uint32_t>(i));
  }
  // Keys with the most labels first, so threads finish together.
  std::vector<std::pair<absl::string_view, std::vector<uint32_t>>> work(
      std::make_move_iterator(groups.begin()),
      std::make_move_iterator(groups.end()));
  groups.clear();
  std::sort(work.begin(), work.end(), [](const auto& a, const auto& b) {
    return a.second.size() > b.second.size();
  });
  std::vector<std::unique_ptr<EventCursor>> cursors(options_.threads);
  std::vector<SweepScratch> scratches(std::max(1, options_.threads));
  return ParallelFor(work.size(), options_.threads, [&](size_t g, int worker) {
    auto& cursor = cursors[worker];
    if (cursor == nullptr) {
      cursor =
          store_->NewEventCursor(view.stream->stream_id, pinned_.view.get());
    }
    const absl::string_view key = work[g].first;
    std::vector<uint32_t>& rows = work[g].second;
    // The rows lie anywhere in the run (labels come in any order): their
    // times are read once, ahead of use, and sorted beside their indexes
    // (then by input order).
    constexpr size_t kAhead = 8;
    std::vector<std::pair<int64_t, uint32_t>> by_time(rows.size());
    for (size_t j = 0; j < rows.size(); ++j) {
      if (j + kAhead < rows.size()) {
        __builtin_prefetch(&buffer_[rows[j + kAhead]]);
      }
      by_time[j] = {buffer_[rows[j]].time_us, rows[j]};
    }
    std::sort(by_time.begin(), by_time.end());
    std::vector<int64_t> times(rows.size());
    for (size_t j = 0; j < rows.size(); ++j) {
      times[j] = by_time[j].first;
      rows[j] = by_time[j].second;
    }
    // Rows of one key belong to one worker; the first error stops them.
    absl::Status failed;
    auto each = [&](size_t j, auto* values) {
      // Two steps ahead: a row's label, then (in cache by then) the bytes
      // it points at.
      if (j + 2 * kAhead < rows.size()) {
        __builtin_prefetch(&buffer_[rows[j + 2 * kAhead]]);
      }
      if (j + kAhead < rows.size()) {
        __builtin_prefetch(buffer_[rows[j + kAhead]].passthrough.data());
      }
      if (failed.ok()) failed = sink(worker, rows[j], key, values);
    };
    RETURN_IF_ERROR(SweepEntity(view, cursor.get(), key, times,
                                pinned_.watermark, each, &scratches[worker]));
    return failed;
  });
}

absl::Status JoinSession::Flush(const Emit& emit) {
  rows_sent_ += buffer_.size();
  if (!service_.parts.empty()) return FlushService(emit);
  const size_t n = buffer_.size();
  if (n == 0) return absl::OkStatus();
  // Each row is kept as its JoinedRow wire bytes (~100 bytes with entity
  // and time; passthrough strings are freed as it is encoded) in its
  // worker's blocks until its response is sent: no message objects and no
  // allocation per row.
  std::vector<absl::string_view> encoded(n);
  std::vector<ByteBlocks> blocks(options_.threads);
  std::vector<std::string> scratch(options_.threads);
  // Bytes of answers each worker holds (one counter per worker: no shared
  // cache line on the per-row path).
  std::vector<PaddedCount> worker_bytes(options_.threads);
  RETURN_IF_ERROR(SweepBy(
      *view_, [&](const Pending& p) -> absl::string_view { return p.entity; },
      [&](int worker, uint32_t row, absl::string_view entity,
          google::protobuf::RepeatedPtrField<v1::Value>* values) {
        const Pending& p = buffer_[row];
        std::string& bytes = scratch[worker];
        bytes.clear();
        if (columnar_) {
          for (const v1::Value& v : *values) EncodeValue(v, &bytes);
        } else {
          EncodeRow(p.index, entity, p.time_us, p.passthrough, *values, &bytes);
        }
        RETURN_IF_ERROR(CheckRowSize(p, "entity", entity, bytes.size(),
                                     &worker_bytes[worker]));
        encoded[row] = blocks[worker].Add(bytes);
        return absl::OkStatus();
      }));

  if (columnar_) {
    RETURN_IF_ERROR(SendColumns(
        n,
        [&](size_t i, ColumnChunkBuilder* chunk) {
          chunk->StartRow(buffer_[i].index);
          return chunk->AddValues(encoded[i]);
        },
        emit));
  } else {
    RETURN_IF_ERROR(SendRows(
        n, [&](size_t i) { return encoded[i].size(); },
        [&](size_t i, std::string* out) {
          out->append(encoded[i].data(), encoded[i].size());
        },
        emit));
  }
  ClearRun();
  grouped_ = true;
  finished_entities_.clear();
  return absl::OkStatus();
}

absl::Status JoinSession::SendRows(size_t n, RowSizeFn row_size,
                                   AppendRowFn append_row, const Emit& emit) {
  std::string response;
  const size_t chunk_bytes = options_.max_response_bytes / 16;
  for (size_t i = 0; i < n;) {
    size_t end = i;
    size_t size = 64;  // the header fields, roughly
    while (end < n && end - i < static_cast<size_t>(options_.chunk_rows) &&
           (end == i || size < chunk_bytes)) {
      size += wire::LenFieldSize(row_size(end));
      ++end;
    }
    response.reserve(size);
    for (; i < end; ++i) {
      response.push_back(static_cast<char>(
          wire::Tag(v1::JoinFeaturesResponse::kRowsFieldNumber, wire::kLen)));
      PutVarint64(&response, row_size(i));
      append_row(i, &response);
    }
    RETURN_IF_ERROR(Send(&response, emit));
  }
  return absl::OkStatus();
}

absl::Status JoinSession::SendColumns(size_t n, AddValuesFn add_values,
                                      const Emit& emit) {
  ColumnChunkBuilder chunk(service_.parts.empty()
                               ? view_->features.size()
                               : service_.FeatureNames().size());
  const size_t chunk_bytes = options_.max_response_bytes / 16;
  std::string response;
  for (size_t i = 0; i < n;) {
    const size_t first = i;
    do {
      RETURN_IF_ERROR(add_values(i++, &chunk));
    } while (i < n && chunk.rows() < static_cast<size_t>(options_.chunk_rows) &&
             chunk.bytes() < chunk_bytes);
    RETURN_IF_ERROR(chunk.AppendTo(
        v1::JoinFeaturesResponse::kColumnsFieldNumber, &response));
    if (response.size() > options_.max_response_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("label row ", buffer_[first].index,
                       " answered as columns is ", response.size(),
                       " bytes, more than the largest message "
                       "(--max_message_bytes ",
                       options_.max_response_bytes, ")"));
    }
    RETURN_IF_ERROR(Send(&response, emit));
  }
  return absl::OkStatus();
}

absl::Status JoinSession::FlushService(const Emit& emit) {
  const size_t n = buffer_.size();
  if (n == 0) return absl::OkStatus();
  // Each part's values of each row, as JoinedRow `values` wire bytes, kept
  // in its worker's blocks; a row without the part's key gets nulls. Parts
  // on one stream and key are swept together (FuseParts).
  const size_t np = service_.parts.size();
  std::vector<ByteBlocks> blocks(options_.threads);
  std::vector<std::string> scratch(options_.threads);
  std::vector<PaddedCount> worker_bytes(options_.threads);
  std::vector<std::vector<absl::string_view>> part_values(np);
  std::vector<std::string> nulls(np);
  for (size_t k = 0; k < np; ++k) {
    const v1::Value null;
    for (size_t i = 0; i < service_.parts[k].take.size(); ++i) {
      EncodeValue(null, &nulls[k]);
    }
    part_values[k].assign(n, nulls[k]);
  }
  for (const FusedParts& group : fused_) {
    const size_t key_index = static_cast<size_t>(
        std::find(key_columns_.begin(), key_columns_.end(), group.key) -
        key_columns_.begin());
    RETURN_IF_ERROR(SweepBy(
        *group.view,
        [&](const Pending& p) -> absl::string_view {
          return keys_[p.keys + key_index];
        },
        [&](int worker, uint32_t row, absl::string_view key,
            google::protobuf::RepeatedPtrField<v1::Value>* values) {
          std::string& bytes = scratch[worker];
          for (const auto& [k, offset] : group.parts) {
            bytes.clear();
            for (int i : service_.parts[k].take) {
              EncodeValue((*values)[offset + i], &bytes);
            }
            RETURN_IF_ERROR(CheckRowSize(buffer_[row], group.key, key,
                                         bytes.size(), &worker_bytes[worker]));
            part_values[k][row] = blocks[worker].Add(bytes);
          }
          return absl::OkStatus();
        }));
  }
  // Rows in input order, each written straight into its response: header,
  // then every part's values.
  std::vector<uint32_t> sizes(n);
  for (size_t i = 0; i < n; ++i) {
    const Pending& p = buffer_[i];
    size_t values_size = 0;
    for (const auto& v : part_values) values_size += v[i].size();
    const size_t size =
        RowSize(p.index, p.entity, p.time_us, p.passthrough, values_size);
    if (size > options_.max_response_bytes) {
      PaddedCount unused;
      return CheckRowSize(
          p, "row with keys",
          absl::StrJoin(keys_.begin() + p.keys,
                        keys_.begin() + p.keys + key_columns_.size(), ","),
          size, &unused);
    }
    sizes[i] = static_cast<uint32_t>(size);
  }
  if (columnar_) {
    RETURN_IF_ERROR(SendColumns(
        n,
        [&](size_t i, ColumnChunkBuilder* chunk) {
          chunk->StartRow(buffer_[i].index);
          for (const auto& v : part_values) {
            RETURN_IF_ERROR(chunk->AddValues(v[i]));
          }
          return absl::OkStatus();
        },
        emit));
  } else {
    RETURN_IF_ERROR(SendRows(
        n, [&](size_t i) { return sizes[i]; },
        [&](size_t i, std::string* out) {
          const Pending& p = buffer_[i];
          EncodeRowHeader(p.index, p.entity, p.time_us, p.passthrough, out);
          for (const auto& v : part_values) {
            out->append(v[i].data(), v[i].size());
          }
        },
        emit));
  }
  ClearRun();
  return absl::OkStatus();
}

void JoinSession::ClearRun() {
  buffer_.clear();
  keys_.clear();
  input_.Clear();
}

}  // namespace rawfeat
