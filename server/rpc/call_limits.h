#ifndef RAWFEAT_SERVER_RPC_CALL_LIMITS_H_
#define RAWFEAT_SERVER_RPC_CALL_LIMITS_H_

// Admission of streaming calls: each open one holds a handler thread and
// buffers, so calls are capped per method (CallSlots) and per principal
// (PrincipalCalls), and a call over a cap is refused at once with
// RESOURCE_EXHAUSTED instead of waiting or costing a thread. Thread-safe.

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/rpc/auth.h"

namespace rawfeat {

// Caps of the streaming calls (each open call holds a handler thread).
struct StreamLimits {
  // Most open calls per streaming method. Default: 64 each.
  int max_read_events = 64;
  int max_snapshots = 64;
  int max_joins = 64;
  int max_ingest_streams = 64;
  // With an --auth_file: most streaming calls (all methods together) one
  // principal may have open, unless its max_streaming_calls says otherwise.
  // Default: 16.
  int max_calls_per_principal = 16;
  // A server stream whose client reads nothing for this long is ended with
  // DEADLINE_EXCEEDED. Default: 5 minutes.
  absl::Duration stall_timeout = absl::Minutes(5);
};

// Open calls of one streaming method, capped.
class CallSlots {
 public:
  CallSlots(const char* method, const char* flag, int cap)
      : method_(method), flag_(flag), cap_(cap) {}
  bool TryAcquire();
  // Releases one slot; the last one hands freed memory back to the OS.
  void Release();
  std::string OverCapMessage() const;
  // The method, its calls open now and its cap.
  const char* method() const { return method_; }
  int open() const {
    absl::MutexLock lock(&mu_);
    return open_;
  }
  int cap() const { return cap_; }

 private:
  const char* const method_;
  const char* const flag_;
  const int cap_;
  mutable absl::Mutex mu_;
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

// Open streaming calls per principal, capped.
class PrincipalCalls {
 public:
  explicit PrincipalCalls(int default_cap) : default_cap_(default_cap) {}
  // Errors: RESOURCE_EXHAUSTED naming the principal and its cap.
  absl::Status TryAcquire(const CallAuth& auth);
  void Release(const std::string& principal);

 private:
  const int default_cap_;
  absl::Mutex mu_;
  std::map<std::string, int> open_ ABSL_GUARDED_BY(mu_);
};

// One admitted streaming call's slots, released when the lease is
// destroyed (when the call is gone). Move-only.
class CallLease {
 public:
  CallLease() = default;
  CallLease(CallLease&& other) noexcept { *this = std::move(other); }
  CallLease& operator=(CallLease&& other) noexcept;
  ~CallLease() { Reset(); }

  // Takes a slot of `method` and, with auth on, one of the call's
  // principal. Errors: RESOURCE_EXHAUSTED (a cap is reached; nothing held).
  static absl::StatusOr<CallLease> Admit(CallSlots* method,
                                         PrincipalCalls* principals,
                                         const CallAuth& auth);

 private:
  void Reset();
  CallSlots* method_ = nullptr;
  PrincipalCalls* principals_ = nullptr;
  std::string principal_;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_RPC_CALL_LIMITS_H_
