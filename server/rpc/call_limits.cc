#include "server/rpc/call_limits.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/rpc/rpc_util.h"

namespace rawfeat {

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

absl::Status PrincipalCalls::TryAcquire(const CallAuth& auth) {
  const int cap = auth.max_streaming_calls() > 0 ? auth.max_streaming_calls()
                                                 : default_cap_;
  absl::MutexLock lock(&mu_);
  int& open = open_[auth.principal()];
  if (open >= cap) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "principal '", auth.principal(), "' has ", open,
        " streaming calls open, the most it may (max_streaming_calls in "
        "the --auth_file, default --max_calls_per_principal); retry when "
        "one ends"));
  }
  ++open;
  return absl::OkStatus();
}

void PrincipalCalls::Release(const std::string& principal) {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(principal);
  if (it != open_.end() && --it->second <= 0) open_.erase(it);
}

CallLease& CallLease::operator=(CallLease&& other) noexcept {
  if (this != &other) {
    Reset();
    method_ = std::exchange(other.method_, nullptr);
    principals_ = std::exchange(other.principals_, nullptr);
    principal_ = std::move(other.principal_);
  }
  return *this;
}

void CallLease::Reset() {
  if (principals_ != nullptr) principals_->Release(principal_);
  if (method_ != nullptr) method_->Release();
  principals_ = nullptr;
  method_ = nullptr;
}

absl::StatusOr<CallLease> CallLease::Admit(CallSlots* method,
                                           PrincipalCalls* principals,
                                           const CallAuth& auth) {
  CallLease lease;
  if (auth.enabled()) {
    absl::Status s = principals->TryAcquire(auth);
    if (!s.ok()) return s;
    lease.principals_ = principals;
    lease.principal_ = auth.principal();
  }
  if (!method->TryAcquire()) {
    return absl::ResourceExhaustedError(method->OverCapMessage());
  }
  lease.method_ = method;
  return lease;
}

}  // namespace rawfeat
