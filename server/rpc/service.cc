#include "server/rpc/service.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "google/protobuf/arena.h"
#include "server/aggregation/aggregation_spec.h"
#include "server/common/echo.h"
#include "server/common/hash.h"
#include "server/common/stack_arena.h"
#include "server/common/status_macros.h"
#include "server/rpc/metrics.h"
#include "server/rpc/rpc_util.h"
#include "server/rpc/status_convert.h"
#include "server/rpc/status_report.h"
#include "server/rpc/stream_calls.h"
#include "server/storage/backup.h"

namespace rawfeat {

absl::StatusOr<CallAuth> FeatureStoreService::Authenticate(
    const grpc::ServerContextBase& context, const char* method) const {
  if (auth_ == nullptr) return CallAuth();
  return auth_->Authenticate(context, method);
}

grpc::Status FeatureStoreService::ApplyDefinitions(
    grpc::ServerContext* context, const v1::ApplyDefinitionsRequest* request,
    v1::ApplyDefinitionsResponse* response) {
  auto auth = Authenticate(*context, "ApplyDefinitions");
  if (!auth.ok()) return ToGrpcStatus(auth.status());
  // A dry run only reads; applying needs `apply` on every definition.
  if (request->dry_run()) {
    absl::Status s = auth->Require(AuthAction::kStatus, ObjectKind::kNone, "");
    if (!s.ok()) return ToGrpcStatus(s);
  } else {
    for (const auto& stream : request->definitions().streams()) {
      absl::Status s =
          auth->Require(AuthAction::kApply, ObjectKind::kStream, stream.name());
      if (!s.ok()) return ToGrpcStatus(s);
    }
    for (const auto& view : request->definitions().views()) {
      absl::Status s =
          auth->Require(AuthAction::kApply, ObjectKind::kView, view.name());
      if (!s.ok()) return ToGrpcStatus(s);
    }
    for (const auto& service : request->definitions().services()) {
      absl::Status s = auth->Require(AuthAction::kApply, ObjectKind::kService,
                                     service.name());
      if (!s.ok()) return ToGrpcStatus(s);
    }
  }
  auto outcome = registry_->Apply(request->definitions(), request->dry_run(),
                                  request->source());
  if (!request->dry_run()) {
    const std::string what =
        outcome.ok()
            ? absl::StrCat("OK changes: ",
                           outcome->changes.empty()
                               ? "none"
                               : absl::StrJoin(outcome->changes, "; "))
            : absl::StrCat(absl::StatusCodeToString(outcome.status().code()),
                           " ", outcome.status().message());
    // Applied changes are logged even without auth (nothing else records
    // who changed the definitions when).
    auth->Audit("definitions", what,
                /*always=*/outcome.ok() && !outcome->changes.empty());
  }
  if (!outcome.ok()) return ToGrpcStatus(outcome.status());
  for (auto& c : outcome->changes) response->add_changes(std::move(c));
  for (auto& p : outcome->problems) response->add_problems(std::move(p));
  return grpc::Status::OK;
}

grpc::Status FeatureStoreService::ListDefinitions(
    grpc::ServerContext* context, const v1::ListDefinitionsRequest*,
    v1::ListDefinitionsResponse* response) {
  auto auth = Authenticate(*context, "ListDefinitions");
  if (!auth.ok()) return ToGrpcStatus(auth.status());
  absl::Status allowed =
      auth->Require(AuthAction::kStatus, ObjectKind::kNone, "");
  if (!allowed.ok()) return ToGrpcStatus(allowed);
  for (const auto& s : registry_->Streams()) {
    v1::StreamInfo* info = response->add_streams();
    *info->mutable_definition() = s->def();
    info->set_schema_versions(static_cast<uint32_t>(s->versions.size()));
    info->set_stream_id(s->stream_id);
  }
  for (const auto& v : registry_->Views()) {
    v1::ViewInfo* info = response->add_views();
    *info->mutable_definition() = *v;
    info->set_status("active");
    const auto stream = registry_->FindStream(v->stream());
    for (const auto& f : v->features()) {
      const AggregationSpec* spec = FindAggregation(f.aggregation());
      v1::FieldType field = v1::FIELD_TYPE_UNSPECIFIED;
      if (stream != nullptr && !f.field().empty()) {
        auto at = stream->position.find(f.field());
        if (at != stream->position.end()) field = stream->types[at->second];
      }
      info->add_feature_types(spec == nullptr ? ""
                                              : ResultTypeName(*spec, field));
    }
  }
  for (const auto& s : registry_->Services()) {
    v1::ServiceInfo* info = response->add_services();
    *info->mutable_definition() = *s;
    for (auto& name : registry_->ServiceFeatureNames(*s)) {
      info->add_feature_names(std::move(name));
    }
  }
  return grpc::Status::OK;
}

grpc::Status FeatureStoreService::Ingest(grpc::ServerContext* context,
                                         const v1::IngestRequest* request,
                                         v1::IngestResponse* response) {
  auto auth = Authenticate(*context, "Ingest");
  if (!auth.ok()) return ToGrpcStatus(auth.status());
  absl::Status allowed = auth->Require(AuthAction::kIngest, ObjectKind::kStream,
                                       request->stream());
  if (!allowed.ok()) return ToGrpcStatus(allowed);
  auto result = ingester_->Ingest(*request, 0);
  const grpc::Status status =
      result.ok() ? grpc::Status::OK : ToGrpcStatus(result.status());
  if (auth->enabled()) {
    // The ingester's answer counts its one batch; a failure counts none.
    auth->Audit(
        absl::StrCat("stream:", absl::CHexEscape(request->stream())),
        IngestSummary(status, result.ok()
                                  ? *result
                                  : v1::IngestResponse::default_instance()));
  }
  if (result.ok()) *response = std::move(*result);
  return status;
}

absl::Status FeatureStoreService::RequireReadFeatures(
    const CallAuth& auth, const std::string& view, const std::string& name,
    uint32_t* service_version) const {
  if (name.empty()) {
    return auth.Require(AuthAction::kReadFeatures, ObjectKind::kView, view);
  }
  RETURN_IF_ERROR(
      auth.Require(AuthAction::kReadFeatures, ObjectKind::kService, name));
  if (!auth.enabled()) return absl::OkStatus();
  // A service reads its views: each needs the grant too.
  auto service = registry_->FindService(name, *service_version);
  if (!service.ok()) return absl::OkStatus();  // the read says NOT_FOUND
  *service_version = (*service)->version();
  for (const auto& part : (*service)->parts()) {
    RETURN_IF_ERROR(auth.Require(AuthAction::kReadFeatures, ObjectKind::kView,
                                 part.view()));
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* FeatureStoreService::GetFeatures(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto auth = Authenticate(*context, "GetFeatures");
  if (!auth.ok()) {
    reactor->Finish(ToGrpcStatus(auth.status()));
    return reactor;
  }
  // A big answer (or one refused as too big) hands its freed pages back.
  bool release_memory = false;
  grpc::Status status = grpc::Status::OK;
  {
    // Request and response on one arena, its first block (enough for a
    // small lookup) on the stack.
    StackArena<8192> arena;
    auto* request =
        google::protobuf::Arena::CreateMessage<v1::GetFeaturesRequest>(
            arena.get());
    if (!ParseMessage(*request_bytes, request)) {
      reactor->Finish(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "GetFeatures: the request does not parse (malformed bytes, or a "
          "string field that is not valid UTF-8)"));
      return reactor;
    }
    absl::Status allowed = RequireReadFeatures(*auth, request);
    if (!allowed.ok()) {
      reactor->Finish(ToGrpcStatus(allowed));
      return reactor;
    }
    if (metrics_ != nullptr) {
      metrics_->RecordLookup(static_cast<size_t>(
          std::max(request->entities_size(), request->key_rows_size())));
    }
    auto* response =
        google::protobuf::Arena::CreateMessage<v1::GetFeaturesResponse>(
            arena.get());
    const absl::Status s = views_->GetFeatures(*request, response);
    if (s.ok()) {
      auto* bytes = new std::string();
      response->SerializeToString(bytes);
      release_memory = bytes->size() > kLargeResponseBytes;
      grpc::Slice slice(
          bytes->data(), bytes->size(),
          [](void* p) { delete static_cast<std::string*>(p); }, bytes);
      *response_bytes = grpc::ByteBuffer(&slice, 1);
    } else {
      release_memory = absl::IsResourceExhausted(s);
      status = ToGrpcStatus(s);
    }
  }  // the arena frees the messages here
  if (release_memory) ReleaseFreedMemory();
  reactor->Finish(status);
  return reactor;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
FeatureStoreService::JoinFeatures(grpc::CallbackServerContext* context) {
  auto auth = Authenticate(*context, "JoinFeatures");
  if (!auth.ok()) return FailedBidiCall(ToGrpcStatus(auth.status()));
  // The view comes with the first message: the join checks it.
  auto lease = Admit(&join_slots_, *auth);
  if (!lease.ok()) return FailedBidiCall(ToGrpcStatus(lease.status()));
  return NewJoinCall(
      views_, join_options_, std::move(*auth),
      [this](const CallAuth& a, v1::JoinFeaturesRequest* first) {
        return RequireReadFeatures(a, first);
      },
      {context, std::move(*lease), limits_.stall_timeout, metrics_});
}

grpc::ServerReadReactor<grpc::ByteBuffer>* FeatureStoreService::IngestStream(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  auto auth = Authenticate(*context, "IngestStream");
  if (!auth.ok()) return FailedReadCall(ToGrpcStatus(auth.status()));
  // Each message names its stream: the call checks them as they come.
  auto lease = Admit(&ingest_stream_slots_, *auth);
  if (!lease.ok()) return FailedReadCall(ToGrpcStatus(lease.status()));
  return NewIngestStreamCall(
      ingester_, store_, response, std::move(*auth),
      {context, std::move(*lease), limits_.stall_timeout, metrics_});
}

namespace {

// Authenticates a server stream, parses its request, checks the caller may
// read what it names (`check`, which may pin what it checked in the
// request), admits it and starts its reactor (`make`); or fails the call
// with the first status that is not OK.
template <typename Request, typename Check, typename Admit, typename Make>
grpc::ServerWriteReactor<grpc::ByteBuffer>* StartServerStream(
    absl::StatusOr<CallAuth> auth, const char* method,
    const grpc::ByteBuffer& bytes, Check check, Admit admit, Make make) {
  if (!auth.ok()) return FailedWriteCall(ToGrpcStatus(auth.status()));
  Request request;
  if (!ParseMessage(bytes, &request)) {
    return FailedWriteCall(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                     absl::StrCat(method, ": the request does not parse")));
  }
  absl::Status allowed = check(*auth, &request);
  if (!allowed.ok()) return FailedWriteCall(ToGrpcStatus(allowed));
  absl::StatusOr<CallLease> lease = admit(*auth);
  if (!lease.ok()) return FailedWriteCall(ToGrpcStatus(lease.status()));
  return make(std::move(request), std::move(*lease));
}

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* FeatureStoreService::Snapshot(
    grpc::CallbackServerContext* context,
    const grpc::ByteBuffer* request_bytes) {
  return StartServerStream<v1::SnapshotRequest>(
      Authenticate(*context, "Snapshot"), "Snapshot", *request_bytes,
      [&](const CallAuth& auth, v1::SnapshotRequest* request) {
        return RequireReadFeatures(auth, request);
      },
      [&](const CallAuth& auth) { return Admit(&snapshot_slots_, auth); },
      [&](v1::SnapshotRequest request, CallLease lease) {
        return NewSnapshotCall(
            views_, std::move(request),
            {context, std::move(lease), limits_.stall_timeout, metrics_});
      });
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* FeatureStoreService::ReadEvents(
    grpc::CallbackServerContext* context,
    const grpc::ByteBuffer* request_bytes) {
  return StartServerStream<v1::ReadEventsRequest>(
      Authenticate(*context, "ReadEvents"), "ReadEvents", *request_bytes,
      [](const CallAuth& auth, const v1::ReadEventsRequest* request) {
        return auth.Require(AuthAction::kReadEvents, ObjectKind::kStream,
                            request->stream());
      },
      [&](const CallAuth& auth) { return Admit(&read_events_slots_, auth); },
      [&](v1::ReadEventsRequest request, CallLease lease) {
        return NewReadEventsCall(
            replayer_, std::move(request),
            {context, std::move(lease), limits_.stall_timeout, metrics_});
      });
}

grpc::Status FeatureStoreService::GetStatus(grpc::ServerContext* context,
                                            const v1::GetStatusRequest*,
                                            v1::GetStatusResponse* response) {
  auto auth = Authenticate(*context, "GetStatus");
  if (!auth.ok()) return ToGrpcStatus(auth.status());
  absl::Status allowed =
      auth->Require(AuthAction::kStatus, ObjectKind::kNone, "");
  if (!allowed.ok()) return ToGrpcStatus(allowed);
  // Pending builds before the tile count: a client that reads 0 pending
  // then finds every tile those builds stored in the count.
  response->set_tile_builds_pending(views_->TileBuildsPending());
  FillStatus(store_, registry_, auth_, response);
  response->set_uptime_seconds(absl::ToDoubleSeconds(absl::Now() - started_));
  if (metrics_ != nullptr) response->set_metrics_address(metrics_->address());
  for (const CallSlots* slots : {&read_events_slots_, &snapshot_slots_,
                                 &join_slots_, &ingest_stream_slots_}) {
    v1::OpenCalls* calls = response->add_open_calls();
    calls->set_method(slots->method());
    calls->set_open(slots->open());
    calls->set_cap(slots->cap());
  }
  return grpc::Status::OK;
}

grpc::Status FeatureStoreService::Backup(grpc::ServerContext* context,
                                         const v1::BackupRequest* request,
                                         v1::BackupResponse* response) {
  auto auth = Authenticate(*context, "Backup");
  if (!auth.ok()) return ToGrpcStatus(auth.status());
  absl::Status allowed =
      auth->Require(AuthAction::kBackup, ObjectKind::kNone, "");
  if (!allowed.ok()) return ToGrpcStatus(allowed);
  auto result = BackupStore(store_, request->dir());
  auth->Audit(absl::StrCat("backup:", absl::CHexEscape(request->dir())),
              result.ok() ? absl::StrCat("OK watermark=", result->watermark)
                          : result.status().ToString(),
              /*always=*/true);
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->set_watermark(result->watermark);
  response->set_backup_dir(result->dir);
  response->set_files_copied(result->files_copied);
  response->set_files_reused(result->files_reused);
  response->set_bytes_copied(result->bytes_copied);
  return grpc::Status::OK;
}

grpc::Status FeatureStoreService::Erase(grpc::ServerContext* context,
                                        const v1::EraseRequest* request,
                                        v1::EraseResponse* response) {
  auto auth = Authenticate(*context, "Erase");
  if (!auth.ok()) return ToGrpcStatus(auth.status());
  absl::Status allowed =
      auth->Require(AuthAction::kErase, ObjectKind::kStream, request->stream());
  if (!allowed.ok()) return ToGrpcStatus(allowed);
  auto stream = registry_->FindStream(request->stream());
  if (stream == nullptr) {
    return ToGrpcStatus(absl::NotFoundError(
        absl::StrCat("stream '", Echo(request->stream()), "' is not defined")));
  }
  // The log keeps a hash of the entity, never the entity itself.
  const std::string hash = DigestHex(Sha256(request->entity()));
  v1::Erasure record;
  record.set_principal(auth->principal());
  record.set_stream(stream->name);
  record.set_entity_sha256(hash);
  auto result = store_->Erase(stream->stream_id, request->entity(), record);
  auth->Audit(absl::StrCat("stream:", absl::CHexEscape(stream->name),
                           " entity_sha256:", hash),
              result.ok() ? absl::StrCat("OK erased=", result->events)
                          : result.status().ToString(),
              /*always=*/true);
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->set_events(result->events);
  response->set_watermark(result->watermark);
  response->set_entity_sha256(hash);
  return grpc::Status::OK;
}

grpc::Status FeatureStoreService::ListErasures(
    grpc::ServerContext* context, const v1::ListErasuresRequest*,
    v1::ListErasuresResponse* response) {
  auto auth = Authenticate(*context, "ListErasures");
  if (!auth.ok()) return ToGrpcStatus(auth.status());
  absl::Status allowed =
      auth->Require(AuthAction::kStatus, ObjectKind::kNone, "");
  if (!allowed.ok()) return ToGrpcStatus(allowed);
  auto erasures = store_->Erasures();
  if (!erasures.ok()) return ToGrpcStatus(erasures.status());
  for (auto& e : *erasures) *response->add_erasures() = std::move(e);
  return grpc::Status::OK;
}

}  // namespace rawfeat
