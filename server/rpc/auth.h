#ifndef RAWFEAT_SERVER_RPC_AUTH_H_
#define RAWFEAT_SERVER_RPC_AUTH_H_

// Bearer tokens with roles: every call carries `authorization: Bearer
// TOKEN`; the token's SHA-256 names a principal of the --auth_file
// (rawfeat.internal.AuthConfig, textproto), whose role allows some calls.
// Deny by default: no token, an unknown one, or a role without the action
// is refused, and logged as an audit line. Tokens are never stored or
// logged, only compared as hashes in constant time. Thread-safe; Reload may
// run while calls are checked.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/string_ref.h"

namespace rawfeat {

class Authorizer {
 public:
  enum class Action { kRead, kWrite, kAdmin };

  // Loads `path`. Errors: INVALID_ARGUMENT naming the file and the problem
  // (unreadable, does not parse, a bad hash or role, no principal).
  static absl::StatusOr<std::unique_ptr<Authorizer>> Load(
      const std::string& path);

  // Re-reads the file; on failure the previous principals stay in force and
  // problem() says why (cleared by the next good reload).
  absl::Status Reload();
  std::string problem() const;

  // The principal allowed `action` for `method`, from the call's metadata.
  // Errors: UNAUTHENTICATED (no or unknown token), PERMISSION_DENIED (its
  // role lacks the action). Denials are logged as audit lines.
  using Metadata = std::multimap<grpc::string_ref, grpc::string_ref>;
  absl::StatusOr<std::string> Check(const Metadata& metadata, Action action,
                                    const char* method) const;

 private:
  struct Entry {
    std::string name;
    std::string hash;  // 32 raw bytes
    Action role;
  };
  explicit Authorizer(std::string path) : path_(std::move(path)) {}
  static absl::StatusOr<std::vector<Entry>> Read(const std::string& path);

  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const std::vector<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  std::string problem_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_RPC_AUTH_H_
