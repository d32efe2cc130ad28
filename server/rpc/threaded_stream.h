#ifndef RAWFEAT_SERVER_RPC_THREADED_STREAM_H_
#define RAWFEAT_SERVER_RPC_THREADED_STREAM_H_

// The streaming calls whose handler runs on a thread of its own, with
// bounded buffering, stall detection and cancellation. Internal to
// server/rpc.

#include <cstdlib>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/common/chunk_buffer.h"
#include "server/common/log.h"
#include "server/common/thread_name.h"
#include "server/rpc/call_limits.h"
#include "server/rpc/status_convert.h"

namespace rawfeat {

class Metrics;

// Called from a reactor's OnDone: waits for the call's handler thread, or
// detaches it when OnDone runs on that very thread (inside its Finish).
inline void JoinOrDetach(std::thread* thread) {
  if (!thread->joinable()) return;  // never started
  if (thread->get_id() == std::this_thread::get_id()) {
    thread->detach();
  } else {
    thread->join();
  }
}

// What every handler-thread call gets: its context (to cancel it), the
// slots it was admitted with, and how long its client may stall.
struct StreamCall {
  grpc::CallbackServerContext* context;
  CallLease lease;
  absl::Duration stall;
  Metrics* metrics = nullptr;  // rows sent are counted here, if set
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
    // with `this`.
    JoinOrDetach(&thread_);
    delete this;
  }

 protected:
  // The handler; its status ends the call.
  virtual grpc::Status Run() = 0;

  // Keeps the call's lease for its lifetime and starts the handler. A
  // client that reads nothing (or, for bidi calls, sends nothing the
  // handler waits for) for `call.stall` has its call cancelled, which frees
  // it even if the client never reads again.
  void Start(StreamCall call) {
    stall_ = call.stall;
    context_ = call.context;
    lease_ = std::move(call.lease);
    try {
      thread_ = std::thread([this] {
        NameThisThread("rf-stream");
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
  // write failed); the message is then left as it was.
  bool Emit(std::string* message) {
    return Enqueue([message] {
      auto* owned = new std::string(std::move(*message));
      return grpc::Slice(
          owned->data(), owned->size(),
          [](void* p) { delete static_cast<std::string*>(p); }, owned);
    });
  }
  bool Emit(ChunkBuffer* message) {
    return Enqueue([message] {
      if (message->empty()) return grpc::Slice();
      const size_t size = message->size();
      return grpc::Slice(message->Release(), size, std::free);
    });
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

  // Emit's wait, then the response `take()` makes (taking the caller's
  // bytes) is queued; `take` is not called once the call is broken.
  template <typename Take>
  bool Enqueue(Take take) {
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
      grpc::Slice slice = take();
      queued_ = grpc::ByteBuffer(&slice, 1);
      has_queued_ = true;
      action = NextLocked();
    }
    RunAction(action);
    return true;
  }

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
  CallLease lease_;  // released when the call is gone
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

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_RPC_THREADED_STREAM_H_
