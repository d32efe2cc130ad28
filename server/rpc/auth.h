#ifndef RAWFEAT_SERVER_RPC_AUTH_H_
#define RAWFEAT_SERVER_RPC_AUTH_H_

// Who may call what, checked in one place at the RPC edge. Every call
// carries `authorization: Bearer TOKEN`; the token's SHA-256 names a
// principal of the --auth_file (rawfeat.internal.AuthConfig, textproto),
// whose grants name actions on streams and views by name pattern. Deny by
// default: no token or an unknown one is UNAUTHENTICATED, a principal
// without a grant for the action on the object is PERMISSION_DENIED.
// Tokens are never stored or logged, only compared as hashes in constant
// time. Each call is authenticated from its own metadata (nothing is kept
// per connection). Denials, applies and ingest summaries are audit lines:
//   audit: principal=NAME peer=PEER method=M object=KIND:NAME outcome=...

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/server_context.h"

namespace rawfeat {

enum class AuthAction : uint32_t {
  kApply = 1,
  kIngest = 2,
  kReadEvents = 4,
  kReadFeatures = 8,
  kStatus = 16,
  kBackup = 32,
  kErase = 64,
};

enum class ObjectKind { kNone, kStream, kView, kService };

// One principal of the auth file. Immutable once loaded.
struct Principal {
  struct Grant {
    uint32_t actions = 0;              // AuthAction bits
    std::vector<std::string> streams;  // name patterns
    std::vector<std::string> views;
    std::vector<std::string> services;
  };
  std::string name;
  std::vector<Grant> grants;
  int max_streaming_calls = 0;  // 0: the server's default

  // Whether a grant names `action` on the object (kNone: any grant with the
  // action, e.g. status).
  bool Allows(AuthAction action, ObjectKind kind, absl::string_view name) const;
};

// True if `name` matches `pattern`, where `*` matches any run of characters.
bool MatchesPattern(absl::string_view pattern, absl::string_view name);

// What one call may do: its principal (none when the server has no
// --auth_file: everything is allowed). Cheap to copy; valid while the
// call's context is.
class CallAuth {
 public:
  // No auth: every Require passes.
  CallAuth() = default;

  // The principal's name, "" without auth.
  const std::string& principal() const;
  bool enabled() const { return principal_ != nullptr; }
  // The principal's own cap on streaming calls (0: the server's default).
  int max_streaming_calls() const {
    return principal_ == nullptr ? 0 : principal_->max_streaming_calls;
  }

  // OK if the principal may do `action` on the object; else
  // PERMISSION_DENIED naming principal, action and object (audit-logged).
  absl::Status Require(AuthAction action, ObjectKind kind,
                       absl::string_view object) const;

  // Logs an audit line for this call (only with auth on, unless `always`).
  void Audit(absl::string_view object, absl::string_view outcome,
             bool always = false) const;

 private:
  friend class Authorizer;
  CallAuth(std::shared_ptr<const Principal> principal,
           const grpc::ServerContextBase* context, const char* method)
      : principal_(std::move(principal)), context_(context), method_(method) {}

  std::shared_ptr<const Principal> principal_;
  const grpc::ServerContextBase* context_ = nullptr;
  const char* method_ = "";
};

// The loaded --auth_file. Thread-safe; Reload may run while calls are
// checked (a call keeps the principal it was authenticated as).
class Authorizer {
 public:
  // Loads `path`. Errors: INVALID_ARGUMENT naming the file and the problem
  // (unreadable, readable by others than its owner, does not parse, a bad
  // hash, role, action or pattern, a grant without objects, duplicate names
  // or tokens, no token at all).
  static absl::StatusOr<std::unique_ptr<Authorizer>> Load(
      const std::string& path);

  // Re-reads the file; on failure the previous principals stay in force and
  // problem() says why (cleared by the next good reload).
  absl::Status Reload();
  std::string problem() const;

  // The principal of the call's bearer token. Errors: UNAUTHENTICATED (no
  // or unknown token; audit-logged). `method` must be a string literal.
  absl::StatusOr<CallAuth> Authenticate(const grpc::ServerContextBase& context,
                                        const char* method) const;

 private:
  struct Token {
    std::string hash;  // 32 raw bytes
    std::shared_ptr<const Principal> principal;
  };
  explicit Authorizer(std::string path) : path_(std::move(path)) {}
  static absl::StatusOr<std::vector<Token>> Read(const std::string& path);

  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const std::vector<Token>> tokens_ ABSL_GUARDED_BY(mu_);
  std::string problem_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_RPC_AUTH_H_
