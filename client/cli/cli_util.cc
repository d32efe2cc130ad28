#include "client/cli/cli_util.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "server/common/time_util.h"

namespace rawfeat {

bool Retryable(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
}

void BackoffSleep(int attempt, std::mt19937_64& rng) {
  const int64_t cap =
      std::min<int64_t>(10000, int64_t{100} << std::min(attempt, 7));
  std::uniform_int_distribution<int64_t> jitter(0, cap);
  std::this_thread::sleep_for(std::chrono::milliseconds(jitter(rng)));
}

absl::StatusOr<int64_t> ParseTimeFlag(const char* flag,
                                      const std::string& text) {
  // A bare date: midnight UTC.
  absl::CivilDay day;
  if (text.size() == 10 && absl::ParseCivilTime(text, &day)) {
    return absl::ToUnixMicros(absl::FromCivil(day, absl::UTCTimeZone()));
  }
  auto t = ParseTime(text);
  if (t.ok()) return t;
  return absl::InvalidArgumentError(absl::StrCat(
      flag, ": '", text,
      "' is not a time: give RFC 3339 (2026-11-24T09:00:00Z, any offset), a "
      "date (2026-11-24, midnight UTC) or epoch with a unit (1700000000s, "
      "1700000000000ms, 1700000000000000us)"));
}

namespace {

// The definition named `name` at `version` (0 = the highest) among
// `infos` (ViewInfo or ServiceInfo). Errors: NOT_FOUND naming the `kind`.
template <typename Info>
absl::StatusOr<const Info*> FindInfo(
    const google::protobuf::RepeatedPtrField<Info>& infos, const char* kind,
    const std::string& name, uint32_t version) {
  const Info* found = nullptr;
  for (const Info& info : infos) {
    const auto& d = info.definition();
    if (d.name() != name || (version != 0 && d.version() != version)) continue;
    if (found == nullptr || d.version() > found->definition().version()) {
      found = &info;
    }
  }
  if (found == nullptr) {
    return absl::NotFoundError(
        version == 0
            ? absl::StrCat(kind, " '", name, "' is not defined")
            : absl::StrCat(kind, " '", name, "' has no version ", version));
  }
  return found;
}

}  // namespace

absl::StatusOr<const v1::ViewInfo*> FindViewInfo(
    const v1::ListDefinitionsResponse& defs, const std::string& name,
    uint32_t version) {
  return FindInfo(defs.views(), "view", name, version);
}

absl::StatusOr<const v1::ServiceInfo*> FindServiceInfo(
    const v1::ListDefinitionsResponse& defs, const std::string& name,
    uint32_t version) {
  return FindInfo(defs.services(), "feature service", name, version);
}

// The definition of (view, version 0 = latest) and its stream.
absl::StatusOr<std::pair<v1::FeatureViewDef, v1::StreamDef>> FindViewDefinition(
    Client& client, const std::string& name, uint32_t version) {
  auto defs = client.ListDefinitions();
  if (!defs.ok()) return defs.status();
  auto info = FindViewInfo(*defs, name, version);
  if (!info.ok()) return info.status();
  const v1::FeatureViewDef* found = &(*info)->definition();
  for (const auto& s : defs->streams()) {
    if (s.definition().name() == found->stream()) {
      return std::make_pair(*found, s.definition());
    }
  }
  return absl::NotFoundError(
      absl::StrCat("stream '", found->stream(), "' is not defined"));
}

absl::StatusOr<v1::Partition> ParsePartitionFlag(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  uint32_t k = 0, n = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &k) ||
      !absl::SimpleAtoi(parts[1], &n) || n == 0 || k >= n) {
    return absl::InvalidArgumentError(
        "--partition must be K/N with 0 <= K < N");
  }
  v1::Partition p;
  p.set_index(k);
  p.set_count(n);
  return p;
}

absl::StatusOr<std::string> TokenFrom(const std::string& file, const char* flag,
                                      const char* env,
                                      const std::string& fallback) {
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    std::string token;
    if (!in || !std::getline(in, token)) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " ", file, ": cannot read the file"));
    }
    token = std::string(absl::StripTrailingAsciiWhitespace(token));
    if (token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " ", file, ": the file holds no token"));
    }
    return token;
  }
  if (const char* value = std::getenv(env)) return std::string(value);
  return fallback;
}

absl::StatusOr<std::string> DataFormat(const std::string& flag,
                                       const std::string& path,
                                       const char* stdout_default) {
  if (!flag.empty()) {
    if (flag == "csv" || flag == "jsonl") return flag;
    return absl::InvalidArgumentError(
        absl::StrCat("--format ", flag, ": use csv or jsonl"));
  }
  if (path == "-" && *stdout_default != '\0')
    return std::string(stdout_default);
  const size_t dot = path.rfind('.');
  const std::string ext =
      dot == std::string::npos || path.find('/', dot) != std::string::npos
          ? ""
          : absl::AsciiStrToLower(path.substr(dot));
  if (ext == ".csv") return std::string("csv");
  if (ext == ".jsonl" || ext == ".ndjson" || ext == ".json") {
    return std::string("jsonl");
  }
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": cannot tell the format from ",
      ext.empty() ? std::string("a name without an extension")
                  : absl::StrCat("the extension '", ext, "'"),
      ": supported are .csv (with a header row) and .jsonl/.ndjson/.json "
      "(JSON Lines); name the file so, or give --format csv|jsonl"));
}

}  // namespace rawfeat
