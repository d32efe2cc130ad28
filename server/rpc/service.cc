#include "server/rpc/service.h"

#include "absl/strings/str_cat.h"
#include "server/rpc/status_convert.h"

namespace rawfeat {

grpc::Status FeatureStoreService::ApplyDefinitions(
    grpc::ServerContext*, const v1::ApplyDefinitionsRequest* request,
    v1::ApplyDefinitionsResponse* response) {
  auto outcome = registry_->Apply(request->definitions(), request->dry_run(),
                                  request->source());
  if (!outcome.ok()) return ToGrpcStatus(outcome.status());
  for (auto& c : outcome->changes) response->add_changes(std::move(c));
  for (auto& p : outcome->problems) response->add_problems(std::move(p));
  return grpc::Status::OK;
}

grpc::Status FeatureStoreService::ListDefinitions(
    grpc::ServerContext*, const v1::ListDefinitionsRequest*,
    v1::ListDefinitionsResponse* response) {
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
  }
  return grpc::Status::OK;
}

grpc::Status FeatureStoreService::Ingest(grpc::ServerContext*,
                                         const v1::IngestRequest* request,
                                         v1::IngestResponse* response) {
  auto result = ingester_->Ingest(*request, 0);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status FeatureStoreService::IngestStream(
    grpc::ServerContext* context, grpc::ServerReader<v1::IngestRequest>* reader,
    v1::IngestResponse* response) {
  v1::IngestRequest request;
  std::string stream;
  int batch = 0;
  response->set_watermark(store_->watermark());
  while (reader->Read(&request)) {
    if (context->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client cancelled");
    }
    // Later messages may leave the stream empty to mean "same as before".
    if (request.stream().empty()) {
      request.set_stream(stream);
    } else {
      stream = request.stream();
    }
    auto result = ingester_->Ingest(request, batch);
    if (!result.ok()) {
      // Earlier batches are durable; resending them is a counted no-op.
      return ToGrpcStatus(absl::Status(
          result.status().code(),
          absl::StrCat(
              "batch ", batch, " (", response->accepted(),
              " events accepted before it): ", result.status().message())));
    }
    response->set_accepted(response->accepted() + result->accepted());
    response->set_duplicates(response->duplicates() + result->duplicates());
    for (auto& r : *result->mutable_rejected()) {
      *response->add_rejected() = std::move(r);
    }
    response->set_watermark(result->watermark());
    ++batch;
  }
  response->set_batches(batch);
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* FeatureStoreService::GetFeatures(
    grpc::CallbackServerContext* context,
    const v1::GetFeaturesRequest* request,
    v1::GetFeaturesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto result = views_->GetFeatures(*request);
  if (!result.ok()) {
    reactor->Finish(ToGrpcStatus(result.status()));
  } else {
    *response = std::move(*result);
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

grpc::Status FeatureStoreService::Snapshot(
    grpc::ServerContext* context, const v1::SnapshotRequest* request,
    grpc::ServerWriter<v1::SnapshotChunk>* writer) {
  absl::Status s = views_->Snapshot(*request, [&](v1::SnapshotChunk* chunk) {
    if (context->IsCancelled() || !writer->Write(*chunk)) {
      return absl::CancelledError("the client went away");
    }
    return absl::OkStatus();
  });
  return ToGrpcStatus(s);
}

grpc::Status FeatureStoreService::JoinFeatures(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::JoinFeaturesResponse,
                             v1::JoinFeaturesRequest>* stream) {
  const JoinSession::Emit emit = [&](v1::JoinFeaturesResponse* response) {
    if (context->IsCancelled() || !stream->Write(*response)) {
      return absl::CancelledError("the client went away");
    }
    return absl::OkStatus();
  };
  v1::JoinFeaturesRequest message;
  if (!stream->Read(&message)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "JoinFeatures: no request message");
  }
  auto session = JoinSession::Start(views_, message, join_options_);
  if (!session.ok()) return ToGrpcStatus(session.status());
  do {
    if (context->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    absl::Status s = (*session)->Add(&message, emit);
    if (!s.ok()) return ToGrpcStatus(s);
  } while (stream->Read(&message));
  return ToGrpcStatus((*session)->Finish(emit));
}

grpc::Status FeatureStoreService::ReadEvents(
    grpc::ServerContext* context, const v1::ReadEventsRequest* request,
    grpc::ServerWriter<v1::ReadEventsResponse>* writer) {
  absl::Status s =
      replayer_->ReadEvents(*request, [&](v1::ReadEventsResponse& chunk) {
        return !context->IsCancelled() && writer->Write(chunk);
      });
  return ToGrpcStatus(s);
}

grpc::Status FeatureStoreService::GetStatus(grpc::ServerContext*,
                                            const v1::GetStatusRequest*,
                                            v1::GetStatusResponse* response) {
  response->set_version(RAWFEAT_VERSION);
  response->set_watermark(store_->watermark());
  const auto counts = store_->StreamCounts();
  for (const auto& s : registry_->Streams()) {
    v1::StreamStatus* st = response->add_streams();
    st->set_name(s->name);
    auto it = counts.find(s->stream_id);
    st->set_events(it == counts.end() ? 0 : it->second);
  }
  response->set_disk_bytes(store_->DiskBytes());
  for (auto& p : registry_->problems()) {
    response->add_definition_problems(std::move(p));
  }
  response->set_data_dir(store_->dir());
  response->set_sync(store_->sync());
  response->set_tiles(store_->TileCount());
  response->set_compacting(store_->Compacting());
  return grpc::Status::OK;
}

}  // namespace rawfeat
