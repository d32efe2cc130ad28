#include "server/events/ingester.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/echo.h"

namespace rawfeat {
namespace {

constexpr int kMaxErrorsInMessage = 20;

std::string DescribeRowErrors(const std::vector<v1::RowError>& errors) {
  std::string msg = absl::StrCat(
      "batch rejected, nothing written: ", errors.size(), " row error(s): ");
  for (int i = 0; i < static_cast<int>(errors.size()); ++i) {
    if (i == kMaxErrorsInMessage) {
      absl::StrAppend(&msg, "; and ", errors.size() - i, " more");
      break;
    }
    const v1::RowError& e = errors[i];
    // Bounded: the message travels in trailers (see server/common/echo.h).
    absl::StrAppend(
        &msg, i == 0 ? "" : "; ", "row ", e.row(),
        e.field().empty() ? "" : absl::StrCat(" field ", Echo(e.field())), ": ",
        Echo(e.reason(), 2 * kMaxEcho));
  }
  return msg;
}

}  // namespace

absl::StatusOr<v1::IngestResponse> Ingester::Ingest(
    const v1::IngestRequest& request, int batch_index) const {
  if (observer_ == nullptr) return IngestCounted(request, batch_index, nullptr);
  IngestCounts counts;
  auto response = IngestCounted(request, batch_index, &counts);
  if (counts.rows < 0) return response;  // not a known stream
  counts.bytes = static_cast<int64_t>(request.ByteSizeLong());
  counts.failed = !response.ok();
  observer_(request.stream(), counts);
  return response;
}

absl::StatusOr<v1::IngestResponse> Ingester::IngestCounted(
    const v1::IngestRequest& request, int batch_index,
    IngestCounts* counts) const {
  IngestCounts unused;
  if (counts == nullptr) counts = &unused;
  auto schema = registry_->FindStream(request.stream());
  if (schema == nullptr) {
    counts->rows = -1;
    return absl::NotFoundError(
        absl::StrCat("stream '", Echo(request.stream()),
                     "' is not defined (apply its definition first)"));
  }
  counts->rows = request.events_size();
  if (request.events_size() > limits_.max_batch_rows) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "batch has ", request.events_size(), " rows; the limit is ",
        limits_.max_batch_rows, " (split it)"));
  }
  const bool skip_rows = request.on_invalid() == v1::SKIP_ROW;
  AppendRequest append;
  append.stream_id = schema->stream_id;
  append.atomic = !skip_rows;
  std::vector<v1::RowError> errors;
  PrepareEvents(*schema, request.events(), limits_, &append.events, &errors);
  counts->invalid = static_cast<int64_t>(errors.size());
  if (!skip_rows && !errors.empty()) {
    return absl::InvalidArgumentError(DescribeRowErrors(errors));
  }
  auto result = store_->Append(&append);
  if (!result.ok()) return result.status();
  counts->conflicts = static_cast<int64_t>(result->conflicts.size());
  if (!skip_rows && !result->conflicts.empty()) {
    counts->accepted = counts->duplicates = 0;  // nothing was written
  } else {
    counts->accepted = result->accepted;
    counts->duplicates = result->duplicates;
    counts->expired = result->expired;
  }
  for (const AppendConflict& c : result->conflicts) {
    v1::RowError err;
    err.set_row(c.row);
    err.set_event_id(c.event_id);
    err.set_field("event_id");
    err.set_reason(c.reason);
    errors.push_back(std::move(err));
  }
  if (!skip_rows && !errors.empty()) {
    return absl::InvalidArgumentError(DescribeRowErrors(errors));
  }
  std::stable_sort(errors.begin(), errors.end(),
                   [](const v1::RowError& a, const v1::RowError& b) {
                     return a.row() < b.row();
                   });
  v1::IngestResponse response;
  response.set_accepted(result->accepted);
  response.set_duplicates(result->duplicates);
  response.set_expired(result->expired);
  response.set_watermark(result->watermark);
  response.set_batches(1);
  for (auto& e : errors) {
    e.set_batch(batch_index);
    *response.add_rejected() = std::move(e);
  }
  return response;
}

}  // namespace rawfeat
