#include "server/rpc/stream_calls.h"

#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/log.h"
#include "server/common/thread_name.h"
#include "server/rpc/metrics.h"
#include "server/rpc/rpc_util.h"
#include "server/rpc/status_convert.h"
#include "server/rpc/threaded_stream.h"

namespace rawfeat {

std::string IngestSummary(const grpc::Status& status,
                          const v1::IngestResponse& total) {
  return absl::StrCat(
      absl::StatusCodeToString(
          static_cast<absl::StatusCode>(status.error_code())),
      " batches=", total.batches(), " accepted=", total.accepted(),
      " duplicates=", total.duplicates(), " rejected=", total.rejected_size());
}

namespace {

// One ReadEvents call: the replay encodes each chunk's wire bytes itself
// (no v1::Event objects).
class ReadEventsReactor final
    : public ThreadedStream<grpc::ServerWriteReactor<grpc::ByteBuffer>> {
 public:
  ReadEventsReactor(const Replayer* replayer, v1::ReadEventsRequest request,
                    StreamCall call)
      : replayer_(replayer), request_(std::move(request)) {
    Start(std::move(call));
  }

 private:
  grpc::Status Run() override {
    return EndStatus(replayer_->ReadEvents(
        request_, [this](ChunkBuffer* chunk) { return Emit(chunk); }));
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
              CallAuth auth, JoinCheck check, StreamCall call)
      : views_(views),
        options_(options),
        auth_(std::move(auth)),
        check_(std::move(check)),
        metrics_(call.metrics) {
    Start(std::move(call));
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
    absl::Status allowed = check_(auth_, &message);
    if (!allowed.ok()) return ToGrpcStatus(allowed);
    auto session = JoinSession::Start(views_, message, options_);
    if (!session.ok()) return ToGrpcStatus(session.status());
    // Rows sent count however the call ends.
    struct CountRows {
      void Record() {
        if (metrics != nullptr && session != nullptr) {
          metrics->RecordJoinRows(session->rows_sent());
        }
        session = nullptr;
      }
      ~CountRows() { Record(); }
      Metrics* metrics;
      const JoinSession* session;
    } count_rows{metrics_, session->get()};
    do {
      absl::Status s = (*session)->Add(&message, emit);
      if (!s.ok()) {
        // A refused answer may have grown large first: its pages go back.
        count_rows.Record();
        session->reset();
        ReleaseFreedMemory();
        return EndStatus(s);
      }
      message.Clear();
    } while (Read(&message, &status));
    if (!status.ok()) return status;
    if (broken()) return BrokenStatus();
    const grpc::Status status_of_finish =
        ToGrpcStatus((*session)->Finish(emit));
    count_rows.Record();
    session->reset();
    ReleaseFreedMemory();
    return status_of_finish;
  }

  const ViewEngine* const views_;
  const JoinSession::Options options_;
  const CallAuth auth_;
  const JoinCheck check_;
  Metrics* const metrics_;
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
                  StreamCall call)
      : views_(views), request_(std::move(request)), metrics_(call.metrics) {
    Start(std::move(call));
  }

 private:
  grpc::Status Run() override {
    std::string bytes;
    const absl::Status s = views_->Snapshot(
        request_,
        [&](v1::SnapshotChunk* chunk) {
          if (metrics_ != nullptr) {
            metrics_->RecordSnapshotRows(static_cast<size_t>(
                chunk->rows_size() + chunk->entities_size()));
          }
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
  Metrics* const metrics_;
};

// Commits an IngestStream's prepared batches in order, up to two at once,
// while the call's handler thread reads, parses and validates the next:
// the second takes its place in the store's commit queue behind the first
// (AppendChain), so one group commit may write both (one log sync for two
// batches), and it is not written if the first fails. Each batch in flight
// has a thread of its own (two per call at most); without one (none could
// be started) Start commits at once.
// Thread-compatible: one handler thread calls Start, Wait and in_flight.
class BatchCommitter {
 public:
  using Result = absl::StatusOr<v1::IngestResponse>;
  static constexpr size_t kMaxInFlight = 2;

  explicit BatchCommitter(const Ingester* ingester) : ingester_(ingester) {}
  // Waits for the batches in flight.
  ~BatchCommitter() {
    {
      absl::MutexLock l(&mu_);
      stop_ = true;
      work_cv_.SignalAll();
    }
    for (std::thread& t : threads_) t.join();
  }

  // Batches started and not collected by Wait().
  size_t in_flight() const {
    absl::MutexLock l(&mu_);
    return jobs_.size();
  }

  // Starts committing `batch` after every batch started before it, and
  // returns once it has its place in the commit order.
  // REQUIRES: in_flight() < kMaxInFlight.
  void Start(std::unique_ptr<Ingester::Prepared> batch) {
    batch->append.chain = &chain_;
    batch->append.chain_position = ++started_;
    Job* job = nullptr;
    bool threaded = false;
    {
      absl::MutexLock l(&mu_);
      jobs_.push_back(std::make_unique<Job>());
      job = jobs_.back().get();
      job->batch = std::move(batch);
      if (threads_.size() < jobs_.size() && !no_thread_) {
        try {
          threads_.emplace_back([this] {
            NameThisThread("rf-commit");
            Loop();
          });
        } catch (const std::system_error&) {
          no_thread_ = true;
        }
      }
      threaded = !no_thread_;
      if (threaded) {
        job->pending = true;
        work_cv_.Signal();
      }
    }
    if (threaded) {
      chain_.AwaitQueued(started_);
      return;
    }
    Result r = ingester_->Commit(job->batch.get());  // no thread: here
    absl::MutexLock l(&mu_);
    job->result = std::move(r);
  }

  // The result of the oldest batch not collected yet, once it is
  // committed; nullopt if none is in flight.
  std::optional<Result> Wait() {
    absl::MutexLock l(&mu_);
    if (jobs_.empty()) return std::nullopt;
    Job* job = jobs_.front().get();
    while (!job->result.has_value()) done_cv_.Wait(&mu_);
    std::optional<Result> r = std::move(job->result);
    jobs_.pop_front();
    return r;
  }

 private:
  struct Job {
    std::unique_ptr<Ingester::Prepared> batch;
    bool pending = false;  // waiting for a thread
    std::optional<Result> result;
  };

  void Loop() {
    absl::MutexLock l(&mu_);
    while (true) {
      Job* job = nullptr;
      for (const auto& j : jobs_) {
        if (j->pending) {
          job = j.get();
          break;
        }
      }
      if (job == nullptr) {
        if (stop_) return;
        work_cv_.Wait(&mu_);
        continue;
      }
      job->pending = false;
      mu_.Unlock();
      Result r = ingester_->Commit(job->batch.get());
      mu_.Lock();
      job->result = std::move(r);
      done_cv_.SignalAll();
    }
  }

  const Ingester* const ingester_;
  AppendChain chain_;
  uint64_t started_ = 0;  // only the handler thread reads or writes it
  mutable absl::Mutex mu_;
  absl::CondVar work_cv_;
  absl::CondVar done_cv_;
  // Oldest first; a job's Prepared stays put while a thread commits it.
  std::deque<std::unique_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  bool no_thread_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;  // joined before chain_ goes
};

// One IngestStream call: each message is read, parsed and validated on the
// handler thread while the two batches before it are written in order
// (BatchCommitter), and the one after it is not read before the older of
// those is durable: a fast client waits for the disk instead of filling
// memory (three batches per call at most). A message that does not parse, a
// batch the principal may not write, or a batch that fails ends the call with
// that batch's index and the counts of the batches before it (also in the
// status details, as a serialized IngestResponse); the call never ends OK with
// fewer batches applied than the client sent, and a batch is never written
// after one before it failed. With auth on, the call's summary is an audit
// line.
class IngestStreamReactor final
    : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  IngestStreamReactor(const Ingester* ingester, EventStore* store,
                      grpc::ByteBuffer* response, CallAuth auth,
                      StreamCall call)
      : ingester_(ingester),
        store_(store),
        response_(response),
        auth_(std::move(auth)),
        context_(call.context),
        stall_(call.stall),
        lease_(std::move(call.lease)) {
    try {
      thread_ = std::thread([this] {
        NameThisThread("rf-ingest");
        const grpc::Status status = Run();
        auth_.Audit(absl::StrCat("stream:", absl::StrJoin(streams_, ",")),
                    IngestSummary(status, total_));
        Finish(status);
      });
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
    JoinOrDetach(&thread_);
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
  grpc::Status Fail(const absl::Status& s, int batch) {
    const grpc::Status g = ToGrpcStatus(absl::Status(
        s.code(),
        absl::StrCat("batch ", batch, " (", total_.batches(), " batches and ",
                     total_.accepted(),
                     " events accepted before it, durable): ", s.message())));
    return grpc::Status(g.error_code(), g.error_message(),
                        total_.SerializeAsString());
  }

  // Adds a committed batch's answer to the call's totals.
  void Count(v1::IngestResponse* result) {
    total_.set_accepted(total_.accepted() + result->accepted());
    total_.set_duplicates(total_.duplicates() + result->duplicates());
    total_.set_expired(total_.expired() + result->expired());
    for (auto& r : *result->mutable_rejected()) {
      *total_.add_rejected() = std::move(r);
    }
    total_.set_watermark(result->watermark());
    total_.set_batches(total_.batches() + 1);
  }

  grpc::Status Run() {
    total_.set_watermark(store_->watermark());
    // A batch in the form serializers write is read from its bytes in one
    // piece (common/ingest_batch.h); any other is parsed into an arena that
    // is reset for the next: a thousand events with field maps are
    // thousands of allocations else. (A prepared batch keeps nothing of
    // either.)
    google::protobuf::ArenaOptions arena_options;
    arena_options.start_block_size = 256 << 10;
    arena_options.max_block_size = 4 << 20;
    google::protobuf::Arena arena(arena_options);
    std::string bytes;
    IngestBatch read;
    BatchCommitter committer(ingester_);
    // Collects the oldest batch in flight (index `collected`): non-OK
    // ends the call with its failure.
    int batch = 0;
    int collected = 0;
    auto collect = [&]() -> std::optional<grpc::Status> {
      std::optional<BatchCommitter::Result> r = committer.Wait();
      if (!r.has_value()) return std::nullopt;
      const int index = collected++;
      if (!r->ok()) return Fail(r->status(), index);
      Count(&**r);
      return std::nullopt;
    };
    // A failure of this batch, after the ones before it are durable (or
    // the first failure among them).
    auto fail_here = [&](const absl::Status& s) {
      while (committer.in_flight() > 0) {
        if (auto failed = collect()) return *failed;
      }
      return Fail(s, batch);
    };
    std::string stream;
    while (Read()) {
      arena.Reset();
      bool parsed = FlattenBytes(in_, &bytes);
      if (parsed && !ReadIngestBatch(bytes, &read)) {
        v1::IngestRequest& request =
            *google::protobuf::Arena::CreateMessage<v1::IngestRequest>(&arena);
        parsed = request.ParseFromString(bytes);
        if (parsed) IngestBatchOf(request, &read);
      }
      if (!parsed) {
        return fail_here(absl::InvalidArgumentError(
            "the message does not parse (malformed bytes, or a string that "
            "is not valid UTF-8)"));
      }
      // Later messages may leave the stream empty to mean "same as before".
      if (read.stream.empty()) {
        read.stream = stream;
      } else if (read.stream != stream) {
        stream = std::string(read.stream);
        absl::Status allowed =
            auth_.Require(AuthAction::kIngest, ObjectKind::kStream, stream);
        if (!allowed.ok()) return fail_here(allowed);
        if (streams_.size() < kMaxAuditedStreams) streams_.insert(stream);
      }
      auto prepared = std::make_unique<Ingester::Prepared>();
      ingester_->Prepare(read, bytes.size(), batch, prepared.get());
      if (committer.in_flight() == BatchCommitter::kMaxInFlight) {
        if (auto failed = collect()) return *failed;
      }
      committer.Start(std::move(prepared));
      ++batch;
    }
    while (committer.in_flight() > 0) {
      if (auto failed = collect()) return *failed;
    }
    if (context_->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    grpc::Slice slice(total_.SerializeAsString());
    *response_ = grpc::ByteBuffer(&slice, 1);
    return grpc::Status::OK;
  }

  // Streams named in one audit line, at most.
  static constexpr size_t kMaxAuditedStreams = 8;

  const Ingester* const ingester_;
  EventStore* const store_;
  grpc::ByteBuffer* const response_;
  const CallAuth auth_;
  grpc::CallbackServerContext* const context_;
  const absl::Duration stall_;
  CallLease lease_;  // released when the call is gone
  std::thread thread_;
  grpc::ByteBuffer in_;       // the read in progress
  v1::IngestResponse total_;  // of the batches applied so far
  std::set<std::string> streams_;
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

grpc::ServerWriteReactor<grpc::ByteBuffer>* NewReadEventsCall(
    const Replayer* replayer, v1::ReadEventsRequest request, StreamCall call) {
  return new ReadEventsReactor(replayer, std::move(request), std::move(call));
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* NewSnapshotCall(
    const ViewEngine* views, v1::SnapshotRequest request, StreamCall call) {
  return new SnapshotReactor(views, std::move(request), std::move(call));
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* NewJoinCall(
    const ViewEngine* views, JoinSession::Options options, CallAuth auth,
    JoinCheck check, StreamCall call) {
  return new JoinReactor(views, options, std::move(auth), std::move(check),
                         std::move(call));
}

grpc::ServerReadReactor<grpc::ByteBuffer>* NewIngestStreamCall(
    const Ingester* ingester, EventStore* store, grpc::ByteBuffer* response,
    CallAuth auth, StreamCall call) {
  return new IngestStreamReactor(ingester, store, response, std::move(auth),
                                 std::move(call));
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* FailedWriteCall(
    grpc::Status status) {
  return new FailedWrite(std::move(status));
}

grpc::ServerReadReactor<grpc::ByteBuffer>* FailedReadCall(grpc::Status status) {
  return new FailedRead(std::move(status));
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* FailedBidiCall(
    grpc::Status status) {
  return new FailedBidi(std::move(status));
}

}  // namespace rawfeat
