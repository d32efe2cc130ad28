#include "server/rpc/service.h"

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
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

namespace {

// One ReadEvents call. A producer thread runs the replay, which encodes
// each chunk's wire bytes itself (no v1::Event objects); gRPC sends one
// chunk while the next is encoded. At most one chunk waits behind the one
// in flight, so a slow client slows the replay instead of filling memory.
class ReadEventsReactor final
    : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  ReadEventsReactor(const Replayer* replayer, v1::ReadEventsRequest request)
      : replayer_(replayer) {
    producer_ = std::thread(
        [this, request = std::move(request)] { Produce(request); });
  }

  void OnWriteDone(bool ok) override {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      in_flight_ = false;
      if (!ok) {
        broken_ = true;
        has_queued_ = false;
      }
      action = NextLocked();
    }
    Run(action);
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    broken_ = true;
  }

  void OnDone() override {
    // Finish is called by the producer last, or after it set done_; either
    // way it has nothing left to do with `this`.
    if (producer_.get_id() == std::this_thread::get_id()) {
      producer_.detach();
    } else {
      producer_.join();
    }
    delete this;
  }

 private:
  enum class Action { kNone, kWrite, kFinish };

  void Produce(const v1::ReadEventsRequest& request) {
    absl::Status s = replayer_->ReadEvents(
        request, [this](std::string* chunk) { return Emit(chunk); });
    Action action;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      status_ = ToGrpcStatus(s);
      action = NextLocked();
    }
    Run(action);  // may be the last use of `this`
  }

  bool Emit(std::string* chunk) {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ReadEventsReactor* r) { return r->broken_ || !r->has_queued_; },
          this));
      if (broken_) return false;
      // The slice owns the bytes: no copy.
      auto* owned = new std::string(std::move(*chunk));
      grpc::Slice slice(
          owned->data(), owned->size(),
          [](void* p) { delete static_cast<std::string*>(p); }, owned);
      queued_ = grpc::ByteBuffer(&slice, 1);
      has_queued_ = true;
      action = NextLocked();
    }
    Run(action);
    return true;
  }

  // What to start next; called with mu_ held, performed by Run without it.
  Action NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (in_flight_ || finished_) return Action::kNone;
    if (has_queued_) {
      writing_.Swap(&queued_);
      queued_.Clear();
      has_queued_ = false;
      in_flight_ = true;
      return Action::kWrite;
    }
    if (done_) {
      finished_ = true;
      return Action::kFinish;
    }
    return Action::kNone;
  }

  void Run(Action action) {
    if (action == Action::kWrite) {
      StartWrite(&writing_);
    } else if (action == Action::kFinish) {
      Finish(status_);
    }
  }

  const Replayer* const replayer_;
  std::thread producer_;
  absl::Mutex mu_;
  grpc::ByteBuffer writing_;  // owned by gRPC while in_flight_
  grpc::ByteBuffer queued_ ABSL_GUARDED_BY(mu_);
  bool has_queued_ ABSL_GUARDED_BY(mu_) = false;
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;  // cancelled or write failed
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_;  // set once, before done_
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* FeatureStoreService::ReadEvents(
    grpc::CallbackServerContext*, const grpc::ByteBuffer* request_bytes) {
  v1::ReadEventsRequest request;
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (request_bytes->Dump(&slices).ok()) {
    for (const auto& slice : slices) {
      bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
  }
  if (!request.ParseFromString(bytes)) {
    // A reactor that only reports the error.
    class Failed final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
     public:
      Failed() {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "ReadEvents: the request does not parse"));
      }
      void OnDone() override { delete this; }
    };
    return new Failed();
  }
  return new ReadEventsReactor(replayer_, std::move(request));
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
