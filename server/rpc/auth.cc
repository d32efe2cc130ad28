#include "server/rpc/auth.h"

#include <openssl/crypto.h>
#include <sys/stat.h>

#include <fstream>
#include <iterator>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "rawfeat/internal/auth.pb.h"
#include "server/common/definitions_text.h"
#include "server/common/hash.h"
#include "server/common/log.h"

namespace rawfeat {
namespace {

constexpr char kBearer[] = "Bearer ";

absl::StatusOr<Authorizer::Action> RoleOf(const std::string& role) {
  if (role == "reader") return Authorizer::Action::kRead;
  if (role == "writer") return Authorizer::Action::kWrite;
  if (role == "admin") return Authorizer::Action::kAdmin;
  return absl::InvalidArgumentError(
      absl::StrCat("role '", role, "' is not one of reader, writer, admin"));
}

const char* ActionName(Authorizer::Action a) {
  switch (a) {
    case Authorizer::Action::kRead:
      return "read";
    case Authorizer::Action::kWrite:
      return "write";
    default:
      return "admin";
  }
}

}  // namespace

absl::StatusOr<std::vector<Authorizer::Entry>> Authorizer::Read(
    const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth_file ", path, ": cannot read the file"));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--auth_file ", path,
        " may be read or written by others than its owner (chmod 600 it)"));
  }
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth_file ", path, ": cannot read the file"));
  }
  const std::string text((std::istreambuf_iterator<char>(in)),
                         std::istreambuf_iterator<char>());
  internal::AuthConfig config;
  absl::Status parsed = ParseTextproto(text, path, &config);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--auth_file does not parse as rawfeat.internal.AuthConfig: ",
        parsed.message()));
  }
  std::vector<Entry> entries;
  for (const auto& p : config.principals()) {
    auto role = RoleOf(p.role());
    if (!role.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--auth_file ", path, ": principal '", p.name(),
                       "': ", role.status().message()));
    }
    for (const std::string& hex : p.token_sha256()) {
      const std::string lower = absl::AsciiStrToLower(hex);
      if (lower.size() != 64 ||
          lower.find_first_not_of("0123456789abcdef") != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--auth_file ", path, ": principal '", p.name(),
            "': token_sha256 must be 64 hex digits (sha256sum of the token)"));
      }
      entries.push_back({p.name(), absl::HexStringToBytes(lower), *role});
    }
  }
  if (entries.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth_file ", path,
                     ": no principal with a token: every call would "
                     "be refused"));
  }
  return entries;
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Load(
    const std::string& path) {
  auto entries = Read(path);
  if (!entries.ok()) return entries.status();
  std::unique_ptr<Authorizer> auth(new Authorizer(path));
  auth->entries_ =
      std::make_shared<const std::vector<Entry>>(std::move(*entries));
  return auth;
}

absl::Status Authorizer::Reload() {
  auto entries = Read(path_);
  absl::MutexLock l(&mu_);
  if (!entries.ok()) {
    problem_ = absl::StrCat("kept the previous principals: ",
                            entries.status().message());
    LogError(absl::StrCat("auth reload failed, ", problem_));
    return entries.status();
  }
  entries_ = std::make_shared<const std::vector<Entry>>(std::move(*entries));
  problem_.clear();
  LogInfo(absl::StrCat("auth: reloaded ", path_, " (", entries_->size(),
                       " tokens)"));
  return absl::OkStatus();
}

std::string Authorizer::problem() const {
  absl::MutexLock l(&mu_);
  return problem_;
}

absl::StatusOr<std::string> Authorizer::Check(const Metadata& metadata,
                                              Action action,
                                              const char* method) const {
  std::shared_ptr<const std::vector<Entry>> entries;
  {
    absl::MutexLock l(&mu_);
    entries = entries_;
  }
  auto it = metadata.find("authorization");
  if (it == metadata.end() ||
      !absl::StartsWith(absl::string_view(it->second.data(), it->second.size()),
                        kBearer)) {
    LogWarning(absl::StrCat("audit: denied ", method, ": no bearer token"));
    return absl::UnauthenticatedError(
        "no bearer token: send 'authorization: Bearer TOKEN' (rawfeat "
        "--token-file, or RAWFEAT_TOKEN)");
  }
  const absl::string_view token(it->second.data() + strlen(kBearer),
                                it->second.size() - strlen(kBearer));
  const Sha256Digest digest = Sha256(token);
  // Every hash is compared, in constant time, whatever matches.
  const Entry* found = nullptr;
  for (const Entry& e : *entries) {
    if (CRYPTO_memcmp(e.hash.data(), digest.data(), digest.size()) == 0) {
      found = &e;
    }
  }
  if (found == nullptr) {
    LogWarning(absl::StrCat("audit: denied ", method, ": unknown token"));
    return absl::UnauthenticatedError("unknown token");
  }
  if (static_cast<int>(found->role) < static_cast<int>(action)) {
    LogWarning(absl::StrCat("audit: denied ", method, " to '", found->name,
                            "': needs ", ActionName(action), ", has ",
                            ActionName(found->role)));
    return absl::PermissionDeniedError(
        absl::StrCat("principal '", found->name, "' may not ",
                     ActionName(action), " (", method, ")"));
  }
  return found->name;
}

}  // namespace rawfeat
