#include "server/rpc/auth.h"

#include <openssl/crypto.h>
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "rawfeat/internal/auth.pb.h"
#include "server/common/definitions_text.h"
#include "server/common/echo.h"
#include "server/common/hash.h"
#include "server/common/log.h"

namespace rawfeat {
namespace {

constexpr char kBearer[] = "Bearer ";

constexpr uint32_t Bit(AuthAction a) { return static_cast<uint32_t>(a); }

constexpr uint32_t kReaderActions = Bit(AuthAction::kReadEvents) |
                                    Bit(AuthAction::kReadFeatures) |
                                    Bit(AuthAction::kStatus);
constexpr uint32_t kWriterActions = kReaderActions | Bit(AuthAction::kIngest);
constexpr uint32_t kAdminActions =
    kWriterActions | Bit(AuthAction::kApply) | Bit(AuthAction::kBackup) |
    Bit(AuthAction::kErase);
// Actions on an object (the others need no stream or view).
constexpr uint32_t kObjectActions =
    kAdminActions & ~Bit(AuthAction::kStatus) & ~Bit(AuthAction::kBackup);

absl::StatusOr<uint32_t> RoleActions(const std::string& role) {
  if (role == "reader") return kReaderActions;
  if (role == "writer") return kWriterActions;
  if (role == "admin") return kAdminActions;
  return absl::InvalidArgumentError(absl::StrCat(
      "role '", Echo(role), "' is not one of reader, writer, admin"));
}

absl::StatusOr<uint32_t> ActionBit(const std::string& action) {
  if (action == "apply") return Bit(AuthAction::kApply);
  if (action == "ingest") return Bit(AuthAction::kIngest);
  if (action == "read_events") return Bit(AuthAction::kReadEvents);
  if (action == "read_features") return Bit(AuthAction::kReadFeatures);
  if (action == "status") return Bit(AuthAction::kStatus);
  if (action == "backup") return Bit(AuthAction::kBackup);
  if (action == "erase") return Bit(AuthAction::kErase);
  return absl::InvalidArgumentError(
      absl::StrCat("action '", Echo(action),
                   "' is not one of apply, ingest, read_events, "
                   "read_features, status, backup, erase"));
}

// "ingest into stream 'orders'": what was refused, for messages.
std::string Refused(AuthAction action, ObjectKind kind,
                    absl::string_view object) {
  const char* noun = kind == ObjectKind::kStream ? " stream '"
                     : kind == ObjectKind::kView ? " view '"
                                                 : " service '";
  const std::string what = kind == ObjectKind::kNone
                               ? std::string()
                               : absl::StrCat(noun, Echo(object), "'");
  switch (action) {
    case AuthAction::kApply:
      return absl::StrCat("apply definitions of", what);
    case AuthAction::kIngest:
      return absl::StrCat("ingest into", what);
    case AuthAction::kReadEvents:
      return absl::StrCat("read events of", what);
    case AuthAction::kReadFeatures:
      return absl::StrCat("read features of", what);
    case AuthAction::kStatus:
      return "read status and definitions";
    case AuthAction::kBackup:
      return "back the store up";
    case AuthAction::kErase:
      return absl::StrCat("erase entities of", what);
  }
  return "do that";
}

std::string ObjectLabel(ObjectKind kind, absl::string_view object) {
  switch (kind) {
    case ObjectKind::kStream:
      return absl::StrCat("stream:", absl::CHexEscape(Echo(object)));
    case ObjectKind::kView:
      return absl::StrCat("view:", absl::CHexEscape(Echo(object)));
    case ObjectKind::kService:
      return absl::StrCat("service:", absl::CHexEscape(Echo(object)));
    case ObjectKind::kNone:
      break;
  }
  return "-";
}

void AuditLine(absl::string_view principal,
               const grpc::ServerContextBase* context, const char* method,
               absl::string_view object, absl::string_view outcome) {
  LogInfo(absl::StrCat("audit: principal=", principal.empty() ? "-" : principal,
                       " peer=", context == nullptr ? "-" : context->peer(),
                       " method=", method, " object=", object,
                       " outcome=", outcome));
}

absl::Status PatternsOk(
    const google::protobuf::RepeatedPtrField<std::string>& patterns) {
  for (const std::string& p : patterns) {
    if (p.empty()) {
      return absl::InvalidArgumentError(
          "an empty name pattern (use \"*\" for every name)");
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool MatchesPattern(absl::string_view pattern, absl::string_view name) {
  // Greedy glob with backtracking to the last `*`: O(|pattern|·|name|).
  size_t p = 0, n = 0;
  size_t star = absl::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_n = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != absl::string_view::npos) {
      p = star + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool Principal::Allows(AuthAction action, ObjectKind kind,
                       absl::string_view object) const {
  for (const Grant& g : grants) {
    if ((g.actions & Bit(action)) == 0) continue;
    if (kind == ObjectKind::kNone) return true;
    const auto& patterns = kind == ObjectKind::kStream ? g.streams
                           : kind == ObjectKind::kView ? g.views
                                                       : g.services;
    for (const std::string& p : patterns) {
      if (MatchesPattern(p, object)) return true;
    }
  }
  return false;
}

const std::string& CallAuth::principal() const {
  static const std::string* const kNone = new std::string();
  return principal_ == nullptr ? *kNone : principal_->name;
}

absl::Status CallAuth::Require(AuthAction action, ObjectKind kind,
                               absl::string_view object) const {
  if (principal_ == nullptr || principal_->Allows(action, kind, object)) {
    return absl::OkStatus();
  }
  const std::string refused = Refused(action, kind, object);
  AuditLine(principal_->name, context_, method_, ObjectLabel(kind, object),
            absl::StrCat("PERMISSION_DENIED (may not ", refused, ")"));
  return absl::PermissionDeniedError(
      absl::StrCat("principal '", principal_->name, "' may not ", refused, " (",
                   method_, "): no grant in the --auth_file allows it"));
}

void CallAuth::Audit(absl::string_view object, absl::string_view outcome,
                     bool always) const {
  if (principal_ == nullptr && !always) return;
  AuditLine(principal_ == nullptr ? "(no auth)" : principal_->name, context_,
            method_, object, outcome);
}

absl::StatusOr<std::vector<Authorizer::Token>> Authorizer::Read(
    const std::string& path) {
  auto fail = [&](absl::string_view problem) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth_file ", path, ": ", problem));
  };
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return fail("cannot read the file");
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return fail(
        "may be read or written by others than its owner (chmod 600 it)");
  }
  std::ifstream in(path);
  if (!in) return fail("cannot read the file");
  const std::string text((std::istreambuf_iterator<char>(in)),
                         std::istreambuf_iterator<char>());
  internal::AuthConfig config;
  absl::Status parsed = ParseTextproto(text, path, &config);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--auth_file does not parse as rawfeat.internal.AuthConfig: ",
        parsed.message()));
  }
  std::vector<Token> tokens;
  std::set<std::string> names, hashes;
  for (const auto& p : config.principals()) {
    auto in_principal = [&](absl::string_view problem) {
      return fail(absl::StrCat("principal '", Echo(p.name()), "': ", problem));
    };
    if (p.name().empty()) return fail("a principal without a name");
    if (!names.insert(p.name()).second) {
      return in_principal("the name is used twice");
    }
    if (p.max_streaming_calls() < 0) {
      return in_principal("max_streaming_calls must be >= 0");
    }
    auto principal = std::make_shared<Principal>();
    principal->name = p.name();
    principal->max_streaming_calls = p.max_streaming_calls();
    if (!p.role().empty()) {
      auto actions = RoleActions(p.role());
      if (!actions.ok()) return in_principal(actions.status().message());
      principal->grants.push_back({*actions, {"*"}, {"*"}, {"*"}});
    }
    for (int i = 0; i < p.grants_size(); ++i) {
      const internal::Grant& g = p.grants(i);
      auto in_grant = [&](absl::string_view problem) {
        return in_principal(absl::StrCat("grant ", i + 1, ": ", problem));
      };
      Principal::Grant grant;
      if (!g.role().empty()) {
        auto actions = RoleActions(g.role());
        if (!actions.ok()) return in_grant(actions.status().message());
        grant.actions |= *actions;
      }
      for (const std::string& a : g.actions()) {
        auto bit = ActionBit(a);
        if (!bit.ok()) return in_grant(bit.status().message());
        grant.actions |= *bit;
      }
      if (grant.actions == 0) return in_grant("names no role and no action");
      for (const auto* patterns : {&g.streams(), &g.views(), &g.services()}) {
        absl::Status ok = PatternsOk(*patterns);
        if (!ok.ok()) return in_grant(ok.message());
      }
      if ((grant.actions & kObjectActions) != 0 && g.streams().empty() &&
          g.views().empty() && g.services().empty()) {
        return in_grant(
            "its actions need objects: add streams: \"NAME\", views: "
            "\"NAME\" and/or services: \"NAME\" (patterns like "
            "\"orders_*\" or \"*\")");
      }
      grant.streams.assign(g.streams().begin(), g.streams().end());
      grant.views.assign(g.views().begin(), g.views().end());
      grant.services.assign(g.services().begin(), g.services().end());
      principal->grants.push_back(std::move(grant));
    }
    if (principal->grants.empty()) {
      return in_principal("grants nothing: give a role or grants");
    }
    std::shared_ptr<const Principal> shared = std::move(principal);
    for (const std::string& hex : p.token_sha256()) {
      const std::string lower = absl::AsciiStrToLower(hex);
      if (lower.size() != 64 ||
          lower.find_first_not_of("0123456789abcdef") != std::string::npos) {
        return in_principal(
            "token_sha256 must be 64 hex digits (sha256sum of the token)");
      }
      std::string hash = absl::HexStringToBytes(lower);
      if (!hashes.insert(hash).second) {
        return in_principal("a token_sha256 is listed twice");
      }
      tokens.push_back({std::move(hash), shared});
    }
  }
  if (tokens.empty()) {
    return fail("no principal with a token: every call would be refused");
  }
  return tokens;
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Load(
    const std::string& path) {
  auto tokens = Read(path);
  if (!tokens.ok()) return tokens.status();
  std::unique_ptr<Authorizer> auth(new Authorizer(path));
  auth->tokens_ =
      std::make_shared<const std::vector<Token>>(std::move(*tokens));
  return auth;
}

absl::Status Authorizer::Reload() {
  auto tokens = Read(path_);
  absl::MutexLock l(&mu_);
  if (!tokens.ok()) {
    problem_ = absl::StrCat("kept the previous principals: ",
                            tokens.status().message());
    LogError(absl::StrCat("auth reload failed, ", problem_));
    return tokens.status();
  }
  tokens_ = std::make_shared<const std::vector<Token>>(std::move(*tokens));
  problem_.clear();
  LogInfo(absl::StrCat("auth: reloaded ", path_, " (", tokens_->size(),
                       " tokens)"));
  return absl::OkStatus();
}

std::string Authorizer::problem() const {
  absl::MutexLock l(&mu_);
  return problem_;
}

absl::StatusOr<CallAuth> Authorizer::Authenticate(
    const grpc::ServerContextBase& context, const char* method) const {
  std::shared_ptr<const std::vector<Token>> tokens;
  {
    absl::MutexLock l(&mu_);
    tokens = tokens_;
  }
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end() ||
      !absl::StartsWith(absl::string_view(it->second.data(), it->second.size()),
                        kBearer)) {
    AuditLine("", &context, method, "-", "UNAUTHENTICATED (no bearer token)");
    return absl::UnauthenticatedError(
        "no bearer token: send 'authorization: Bearer TOKEN' (rawfeat "
        "--token-file, or RAWFEAT_TOKEN)");
  }
  const absl::string_view token(it->second.data() + strlen(kBearer),
                                it->second.size() - strlen(kBearer));
  const Sha256Digest digest = Sha256(token);
  // Every hash is compared, in constant time, whatever matches.
  const Token* found = nullptr;
  for (const Token& t : *tokens) {
    if (CRYPTO_memcmp(t.hash.data(), digest.data(), digest.size()) == 0) {
      found = &t;
    }
  }
  if (found == nullptr) {
    AuditLine("", &context, method, "-", "UNAUTHENTICATED (unknown token)");
    return absl::UnauthenticatedError("unknown token");
  }
  return CallAuth(found->principal, &context, method);
}

}  // namespace rawfeat
