#include "server/rpc/service.h"

#include <malloc.h>

#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "server/common/log.h"
#include "server/common/time_util.h"
#include "server/rpc/status_convert.h"

namespace rawfeat {
namespace {

// Snapshots and joins allocate and free hundreds of MB from several
// threads' malloc arenas, and glibc keeps freed pages mapped. Handing them
// back when such a call ends keeps the server's RSS close to what it holds
// (measured: 585 -> 367 MiB after a 1M-label join). A few ms.
void ReleaseFreedMemory() { malloc_trim(0); }

}  // namespace

bool CallSlots::TryAcquire() {
  absl::MutexLock lock(&mu_);
  if (open_ >= cap_) return false;
  ++open_;
  return true;
}

void CallSlots::Release() {
  bool last;
  {
    absl::MutexLock lock(&mu_);
    last = --open_ == 0;
  }
  // Streams allocate and free large buffers from many threads; hand freed
  // pages back once none of this method's calls runs.
  if (last) ReleaseFreedMemory();
}

std::string CallSlots::OverCapMessage() const {
  return absl::StrCat(method_, ": ", cap_,
                      " calls are open, the most this server allows (", flag_,
                      "); retry later");
}

grpc::Status FeatureStoreService::Allow(const grpc::ServerContextBase& context,
                                        Authorizer::Action action,
                                        const char* method,
                                        std::string* principal) const {
  if (auth_ == nullptr) return grpc::Status::OK;
  auto who = auth_->Check(context.client_metadata(), action, method);
  if (!who.ok()) return ToGrpcStatus(who.status());
  if (principal != nullptr) *principal = std::move(*who);
  return grpc::Status::OK;
}

grpc::Status FeatureStoreService::ApplyDefinitions(
    grpc::ServerContext* context, const v1::ApplyDefinitionsRequest* request,
    v1::ApplyDefinitionsResponse* response) {
  std::string principal;
  grpc::Status allowed = Allow(*context,
                               request->dry_run() ? Authorizer::Action::kRead
                                                  : Authorizer::Action::kAdmin,
                               "ApplyDefinitions", &principal);
  if (!allowed.ok()) return allowed;
  auto outcome = registry_->Apply(request->definitions(), request->dry_run(),
                                  request->source());
  if (!outcome.ok()) return ToGrpcStatus(outcome.status());
  if (!request->dry_run() && !outcome->changes.empty()) {
    LogInfo(absl::StrCat(
        "audit: '", principal.empty() ? "(no auth)" : principal,
        "' applied definitions: ", absl::StrJoin(outcome->changes, "; ")));
  }
  for (auto& c : outcome->changes) response->add_changes(std::move(c));
  for (auto& p : outcome->problems) response->add_problems(std::move(p));
  return grpc::Status::OK;
}

grpc::Status FeatureStoreService::ListDefinitions(
    grpc::ServerContext* context, const v1::ListDefinitionsRequest*,
    v1::ListDefinitionsResponse* response) {
  grpc::Status allowed =
      Allow(*context, Authorizer::Action::kRead, "ListDefinitions");
  if (!allowed.ok()) return allowed;
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

grpc::Status FeatureStoreService::Ingest(grpc::ServerContext* context,
                                         const v1::IngestRequest* request,
                                         v1::IngestResponse* response) {
  grpc::Status allowed = Allow(*context, Authorizer::Action::kWrite, "Ingest");
  if (!allowed.ok()) return allowed;
  auto result = ingester_->Ingest(*request, 0);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

namespace {

// Parses a request message from its raw bytes.
bool ParseMessage(const grpc::ByteBuffer& bytes,
                  google::protobuf::MessageLite* message) {
  std::vector<grpc::Slice> slices;
  if (!bytes.Dump(&slices).ok()) return false;
  if (slices.size() == 1) {
    return message->ParseFromArray(slices[0].begin(),
                                   static_cast<int>(slices[0].size()));
  }
  std::string joined;
  for (const auto& slice : slices) {
    joined.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return message->ParseFromString(joined);
}

// Responses above this many bytes are followed by handing freed memory
// back to the OS.
constexpr size_t kLargeResponseBytes = 16 << 20;

}  // namespace

grpc::ServerUnaryReactor* FeatureStoreService::GetFeatures(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  grpc::Status allowed =
      Allow(*context, Authorizer::Action::kRead, "GetFeatures");
  if (!allowed.ok()) {
    reactor->Finish(allowed);
    return reactor;
  }
  v1::GetFeaturesRequest request;
  if (!ParseMessage(*request_bytes, &request)) {
    reactor->Finish(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        "GetFeatures: the request does not parse (malformed bytes, or a "
        "string field that is not valid UTF-8)"));
    return reactor;
  }
  auto result = views_->GetFeatures(request);
  if (!result.ok()) {
    if (absl::IsResourceExhausted(result.status())) ReleaseFreedMemory();
    reactor->Finish(ToGrpcStatus(result.status()));
    return reactor;
  }
  auto* bytes = new std::string();
  result->SerializeToString(bytes);
  const bool large = bytes->size() > kLargeResponseBytes;
  grpc::Slice slice(
      bytes->data(), bytes->size(),
      [](void* p) { delete static_cast<std::string*>(p); }, bytes);
  *response_bytes = grpc::ByteBuffer(&slice, 1);
  if (large) {
    result = absl::CancelledError("");  // frees the message first
    ReleaseFreedMemory();
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

namespace {

// What every handler-thread call gets: its context (to cancel it), the
// slots of its method, and how long its client may stall.
struct StreamCall {
  grpc::CallbackServerContext* context;
  CallSlots* slots;
  absl::Duration stall;
};

// A server-streaming call (`Base` is a ServerWriteReactor or
// ServerBidiReactor of raw bytes) whose handler runs on its own thread and
// writes messages it serialized itself: gRPC sends one while the handler
// makes the next, and at most one waits behind the one in flight, so a
// slow client slows the handler instead of filling memory. Subclasses
// implement Run() and call Start() from their constructor.
template <typename Base>
class ThreadedStream : public Base {
 public:
  ~ThreadedStream() override {
    if (slot_ != nullptr) slot_->Release();
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
    RunAction(action);
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    broken_ = true;
  }

  void OnDone() override {
    // Finish comes after the handler set done_: it has nothing left to do
    // with `this` (it may be this very thread, inside Finish).
    if (!thread_.joinable()) {
      // The handler never started.
    } else if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
    delete this;
  }

 protected:
  // The handler; its status ends the call.
  virtual grpc::Status Run() = 0;

  // Takes one of the call's slots for its lifetime and starts the handler;
  // over the cap the call fails at once with RESOURCE_EXHAUSTED. A client
  // that reads nothing (or, for bidi calls, sends nothing the handler waits
  // for) for `call.stall` has its call cancelled, which frees it even if
  // the client never reads again.
  void Start(const StreamCall& call) {
    stall_ = call.stall;
    context_ = call.context;
    CallSlots* slots = call.slots;
    if (slots != nullptr) {
      if (!slots->TryAcquire()) {
        {
          absl::MutexLock lock(&mu_);
          done_ = true;
          finished_ = true;
        }
        this->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                  slots->OverCapMessage()));
        return;
      }
      slot_ = slots;
    }
    try {
      thread_ = std::thread([this] {
        const grpc::Status status = Run();
        Action action;
        {
          absl::MutexLock lock(&mu_);
          done_ = true;
          status_ = status;
          action = NextLocked();
        }
        RunAction(action);  // may be the last use of `this`
      });
    } catch (const std::system_error& e) {
      // Out of threads: this call fails, the server keeps serving.
      {
        absl::MutexLock lock(&mu_);
        done_ = true;
        finished_ = true;
      }
      this->Finish(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("cannot start a thread for this call: ", e.what())));
    }
  }

  // Queues one serialized response (taking its bytes); blocks while
  // another one waits. False once the call is broken (cancelled, or a
  // write failed).
  bool Emit(std::string* message) {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      if (!mu_.AwaitWithTimeout(absl::Condition(
                                    +[](ThreadedStream* r) {
                                      return r->broken_ || !r->has_queued_;
                                    },
                                    this),
                                stall_)) {
        // The client stopped reading: end the call rather than hold its
        // thread and memory.
        Stalled();
      }
      if (broken_) return false;
      auto* owned = new std::string(std::move(*message));
      grpc::Slice slice(
          owned->data(), owned->size(),
          [](void* p) { delete static_cast<std::string*>(p); }, owned);
      queued_ = grpc::ByteBuffer(&slice, 1);
      has_queued_ = true;
      action = NextLocked();
    }
    RunAction(action);
    return true;
  }

  bool broken() {
    absl::MutexLock lock(&mu_);
    return broken_;
  }

  absl::Duration stall() const { return stall_; }

  // Marks the call stalled and cancels it: a write the client never reads
  // then completes (not ok), and the call can end. REQUIRES: mu_ held.
  void Stalled() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    broken_ = true;
    stalled_ = true;
    LogWarning(absl::StrCat("a streaming call's client stalled for ",
                            absl::FormatDuration(stall_), ": cancelled"));
    context_->TryCancel();
  }

  // The status to end the call with after the handler's work returned
  // `s`: why the call broke if it did, else `s`.
  grpc::Status EndStatus(const absl::Status& s) {
    if (!s.ok() && broken()) return BrokenStatus();
    return ToGrpcStatus(s);
  }

  // Why Emit failed: the status to end the call with.
  grpc::Status BrokenStatus() {
    absl::MutexLock lock(&mu_);
    if (stalled_) {
      return grpc::Status(
          grpc::StatusCode::DEADLINE_EXCEEDED,
          absl::StrCat("the client read nothing for ",
                       absl::FormatDuration(stall_), "; call ended"));
    }
    return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
  }

  absl::Mutex mu_;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;

 private:
  enum class Action { kNone, kWrite, kFinish };

  // What to start next; decided under mu_, done by RunAction without it.
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

  void RunAction(Action action) {
    if (action == Action::kWrite) {
      this->StartWrite(&writing_);
    } else if (action == Action::kFinish) {
      this->Finish(status_);
    }
  }

  std::thread thread_;
  CallSlots* slot_ = nullptr;  // released when the call is gone
  grpc::CallbackServerContext* context_ = nullptr;
  absl::Duration stall_ = absl::InfiniteDuration();
  bool stalled_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ByteBuffer writing_;  // owned by gRPC while in_flight_
  grpc::ByteBuffer queued_ ABSL_GUARDED_BY(mu_);
  bool has_queued_ ABSL_GUARDED_BY(mu_) = false;
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_;  // set once, before done_
};

// One ReadEvents call: the replay encodes each chunk's wire bytes itself
// (no v1::Event objects).
class ReadEventsReactor final
    : public ThreadedStream<grpc::ServerWriteReactor<grpc::ByteBuffer>> {
 public:
  ReadEventsReactor(const Replayer* replayer, v1::ReadEventsRequest request,
                    const StreamCall& call)
      : replayer_(replayer), request_(std::move(request)) {
    Start(call);
  }

 private:
  grpc::Status Run() override {
    return EndStatus(replayer_->ReadEvents(
        request_, [this](std::string* chunk) { return Emit(chunk); }));
  }

  const Replayer* const replayer_;
  const v1::ReadEventsRequest request_;
};

// One JoinFeatures call: label messages are read on the handler thread
// (blocking until each arrives) and answers are written as the session
// serialized them (no message objects per row).
class JoinReactor final
    : public ThreadedStream<
          grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>> {
 public:
  JoinReactor(const ViewEngine* views, JoinSession::Options options,
              const StreamCall& call)
      : views_(views), options_(options) {
    Start(call);
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    read_ok_ = ok;
    reading_ = false;
  }

 private:
  // The next request message; false at the end of the input, on a message
  // that does not parse (*status set) or once the call is broken.
  bool Read(v1::JoinFeaturesRequest* message, grpc::Status* status) {
    {
      absl::MutexLock lock(&mu_);
      if (broken_) return false;
      reading_ = true;
    }
    StartRead(&in_);
    {
      absl::MutexLock lock(&mu_);
      // A cancelled call still completes its read (not ok): wait for it so
      // `in_` is not in use when the call ends. A client that sends nothing
      // for the stall time is cancelled.
      const absl::Condition read_done(
          +[](JoinReactor* r) { return !r->reading_; }, this);
      if (!mu_.AwaitWithTimeout(read_done, stall())) {
        Stalled();
        mu_.Await(read_done);
      }
      if (!read_ok_ || broken_) return false;
    }
    if (!ParseMessage(in_, message)) {
      *status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                             "JoinFeatures: a request does not parse");
      return false;
    }
    return true;
  }

  grpc::Status Run() override {
    const JoinSession::Emit emit = [this](std::string* response) {
      return Emit(response) ? absl::OkStatus()
                            : absl::CancelledError("the client went away");
    };
    grpc::Status status;
    v1::JoinFeaturesRequest message;
    if (!Read(&message, &status)) {
      if (!status.ok()) return status;
      if (broken()) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      }
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "JoinFeatures: no request message");
    }
    auto session = JoinSession::Start(views_, message, options_);
    if (!session.ok()) return ToGrpcStatus(session.status());
    do {
      absl::Status s = (*session)->Add(&message, emit);
      if (!s.ok()) return EndStatus(s);
      message.Clear();
    } while (Read(&message, &status));
    if (!status.ok()) return status;
    if (broken()) return BrokenStatus();
    const grpc::Status status_of_finish =
        ToGrpcStatus((*session)->Finish(emit));
    session->reset();
    ReleaseFreedMemory();
    return status_of_finish;
  }

  const ViewEngine* const views_;
  const JoinSession::Options options_;
  grpc::ByteBuffer in_;  // the read in progress
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool read_ok_ ABSL_GUARDED_BY(mu_) = false;
};

// One Snapshot call: chunks are computed on the handler thread (and its
// workers) while gRPC sends the previous one; cancellation, a stalled
// client and server shutdown stop the computation between entities.
class SnapshotReactor final
    : public ThreadedStream<grpc::ServerWriteReactor<grpc::ByteBuffer>> {
 public:
  SnapshotReactor(const ViewEngine* views, v1::SnapshotRequest request,
                  const StreamCall& call)
      : views_(views), request_(std::move(request)) {
    Start(call);
  }

 private:
  grpc::Status Run() override {
    std::string bytes;
    const absl::Status s = views_->Snapshot(
        request_,
        [&](v1::SnapshotChunk* chunk) {
          bytes.clear();
          chunk->SerializeToString(&bytes);
          return Emit(&bytes) ? absl::OkStatus()
                              : absl::CancelledError("the client went away");
        },
        [this] { return broken(); });
    ReleaseFreedMemory();
    return EndStatus(s);
  }

  const ViewEngine* const views_;
  const v1::SnapshotRequest request_;
};

// One IngestStream call: each message is read and ingested on the handler
// thread (the next is not read before the previous is durable, so a fast
// client waits for the disk instead of filling memory). A message that does
// not parse, or a batch that fails, ends the call with that batch's index
// and the counts of the batches before it (also in the status details, as
// a serialized IngestResponse); the call never ends OK with fewer batches
// applied than the client sent.
class IngestStreamReactor final
    : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  IngestStreamReactor(const Ingester* ingester, EventStore* store,
                      grpc::ByteBuffer* response, const StreamCall& call)
      : ingester_(ingester),
        store_(store),
        response_(response),
        context_(call.context),
        stall_(call.stall) {
    CallSlots* slots = call.slots;
    if (!slots->TryAcquire()) {
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          slots->OverCapMessage()));
      return;
    }
    slot_ = slots;
    try {
      thread_ = std::thread([this] { Finish(Run()); });
    } catch (const std::system_error& e) {
      Finish(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("cannot start a thread for this call: ", e.what())));
    }
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    read_ok_ = ok;
    reading_ = false;
  }

  void OnCancel() override {}

  void OnDone() override {
    if (slot_ != nullptr) slot_->Release();
    if (!thread_.joinable()) {
      // Never started.
    } else if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
    delete this;
  }

 private:
  // The next message's bytes; false at the end of the input (or when the
  // call is cancelled).
  bool Read() {
    {
      absl::MutexLock lock(&mu_);
      reading_ = true;
    }
    StartRead(&in_);
    absl::MutexLock lock(&mu_);
    const absl::Condition read_done(
        +[](IngestStreamReactor* r) { return !r->reading_; }, this);
    if (!mu_.AwaitWithTimeout(read_done, stall_)) {
      // A client that sends nothing for the stall time holds a thread:
      // cancel its call (the read then completes, not ok).
      LogWarning(absl::StrCat("an IngestStream client sent nothing for ",
                              absl::FormatDuration(stall_), ": cancelled"));
      context_->TryCancel();
      mu_.Await(read_done);
    }
    return read_ok_;
  }

  // Ends the call with `s`, naming the batch and what came before it.
  grpc::Status Fail(const absl::Status& s, int batch,
                    const v1::IngestResponse& before) {
    const grpc::Status g = ToGrpcStatus(absl::Status(
        s.code(),
        absl::StrCat("batch ", batch, " (", before.batches(), " batches and ",
                     before.accepted(),
                     " events accepted before it, durable): ", s.message())));
    return grpc::Status(g.error_code(), g.error_message(),
                        before.SerializeAsString());
  }

  grpc::Status Run() {
    v1::IngestResponse total;
    total.set_watermark(store_->watermark());
    v1::IngestRequest request;
    std::string stream;
    int batch = 0;
    while (Read()) {
      request.Clear();
      if (!ParseMessage(in_, &request)) {
        return Fail(absl::InvalidArgumentError(
                        "the message does not parse (malformed bytes, or a "
                        "string that is not valid UTF-8)"),
                    batch, total);
      }
      // Later messages may leave the stream empty to mean "same as before".
      if (request.stream().empty()) {
        request.set_stream(stream);
      } else {
        stream = request.stream();
      }
      auto result = ingester_->Ingest(request, batch);
      if (!result.ok()) return Fail(result.status(), batch, total);
      total.set_accepted(total.accepted() + result->accepted());
      total.set_duplicates(total.duplicates() + result->duplicates());
      for (auto& r : *result->mutable_rejected()) {
        *total.add_rejected() = std::move(r);
      }
      total.set_watermark(result->watermark());
      ++batch;
      total.set_batches(batch);
    }
    if (context_->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    total.set_batches(batch);
    std::string bytes = total.SerializeAsString();
    grpc::Slice slice(bytes);
    *response_ = grpc::ByteBuffer(&slice, 1);
    return grpc::Status::OK;
  }

  const Ingester* const ingester_;
  EventStore* const store_;
  grpc::ByteBuffer* const response_;
  grpc::CallbackServerContext* const context_;
  const absl::Duration stall_;
  CallSlots* slot_ = nullptr;
  std::thread thread_;
  grpc::ByteBuffer in_;  // the read in progress
  absl::Mutex mu_;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool read_ok_ ABSL_GUARDED_BY(mu_) = false;
};

// Calls that only report an error.
class FailedWrite final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit FailedWrite(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};
class FailedRead final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  explicit FailedRead(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};
class FailedBidi final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit FailedBidi(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
FeatureStoreService::JoinFeatures(grpc::CallbackServerContext* context) {
  grpc::Status allowed =
      Allow(*context, Authorizer::Action::kRead, "JoinFeatures");
  if (!allowed.ok()) return new FailedBidi(allowed);
  return new JoinReactor(views_, join_options_,
                         {context, &join_slots_, limits_.stall_timeout});
}

grpc::ServerReadReactor<grpc::ByteBuffer>* FeatureStoreService::IngestStream(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  grpc::Status allowed =
      Allow(*context, Authorizer::Action::kWrite, "IngestStream");
  if (!allowed.ok()) return new FailedRead(allowed);
  return new IngestStreamReactor(
      ingester_, store_, response,
      {context, &ingest_stream_slots_, limits_.stall_timeout});
}

namespace {

// Parses a server stream's request and starts its reactor (`make`), or
// fails the call with INVALID_ARGUMENT.
template <typename Request, typename Make>
grpc::ServerWriteReactor<grpc::ByteBuffer>* StartServerStream(
    const char* method, const grpc::ByteBuffer& bytes, Make make) {
  Request request;
  if (!ParseMessage(bytes, &request)) {
    return new FailedWrite(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                     absl::StrCat(method, ": the request does not parse")));
  }
  return make(std::move(request));
}

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* FeatureStoreService::Snapshot(
    grpc::CallbackServerContext* context,
    const grpc::ByteBuffer* request_bytes) {
  grpc::Status allowed = Allow(*context, Authorizer::Action::kRead, "Snapshot");
  if (!allowed.ok()) return new FailedWrite(allowed);
  return StartServerStream<v1::SnapshotRequest>(
      "Snapshot", *request_bytes, [&](v1::SnapshotRequest request) {
        return new SnapshotReactor(
            views_, std::move(request),
            {context, &snapshot_slots_, limits_.stall_timeout});
      });
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* FeatureStoreService::ReadEvents(
    grpc::CallbackServerContext* context,
    const grpc::ByteBuffer* request_bytes) {
  grpc::Status allowed =
      Allow(*context, Authorizer::Action::kRead, "ReadEvents");
  if (!allowed.ok()) return new FailedWrite(allowed);
  return StartServerStream<v1::ReadEventsRequest>(
      "ReadEvents", *request_bytes, [&](v1::ReadEventsRequest request) {
        return new ReadEventsReactor(
            replayer_, std::move(request),
            {context, &read_events_slots_, limits_.stall_timeout});
      });
}

grpc::Status FeatureStoreService::GetStatus(grpc::ServerContext* context,
                                            const v1::GetStatusRequest*,
                                            v1::GetStatusResponse* response) {
  grpc::Status allowed =
      Allow(*context, Authorizer::Action::kRead, "GetStatus");
  if (!allowed.ok()) return allowed;
  if (auth_ != nullptr) response->set_auth_problem(auth_->problem());
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
  response->set_write_error(store_->WriteError());
  response->set_disk_free_bytes(store_->DiskFreeBytes());
  for (const DataLoss& loss : store_->DataLosses()) {
    v1::DataLoss* out = response->add_data_losses();
    out->set_first_seq(loss.first_seq);
    out->set_last_seq(loss.last_seq);
    *out->mutable_accepted_at() = MicrosToTimestamp(loss.accepted_at_us);
    out->set_detail(loss.detail);
  }
  return grpc::Status::OK;
}

}  // namespace rawfeat
