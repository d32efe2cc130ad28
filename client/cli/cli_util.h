#ifndef RAWFEAT_CLIENT_CLI_CLI_UTIL_H_
#define RAWFEAT_CLIENT_CLI_CLI_UTIL_H_

// What every rawfeat command shares: one-line failures on stderr, and
// retried ingest batches.

#include <cstdio>
#include <random>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/client.h"
#include "client/output_file.h"

namespace rawfeat {

inline const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

// A failure reported as one line on stderr; returns exit code 1.
// A local problem (IsLocalError) is printed without a status code.
inline int Fail(const absl::Status& s) {
  std::string msg(s.message());
  for (char& c : msg) {
    if (c == '\n') c = ' ';
  }
  if (IsLocalError(s)) {
    std::fprintf(stderr, "rawfeat: %s\n", msg.c_str());
  } else {
    std::fprintf(stderr, "rawfeat: %s: %s\n",
                 absl::StatusCodeToString(s.code()).c_str(), msg.c_str());
  }
  return 1;
}

inline int Fail(absl::string_view msg) {
  std::fprintf(stderr, "rawfeat: %s\n", std::string(msg).c_str());
  return 1;
}

// Whether a failed call may be retried (UNAVAILABLE, DEADLINE_EXCEEDED).
bool Retryable(const absl::Status& s);

// Sleeps before retry number `attempt` (0-based): exponential backoff from
// 100 ms doubling to 10 s, with full jitter.
void BackoffSleep(int attempt, std::mt19937_64& rng);

// Runs `call` (returning a StatusOr or a Status) until it succeeds, fails
// with a status that is not Retryable, or `retries` retries are spent. For
// idempotent calls only.
template <typename Call>
auto WithRetries(int retries, std::mt19937_64& rng, const Call& call) {
  for (int attempt = 0;; ++attempt) {
    auto r = call();
    const absl::Status& s = StatusOf(r);
    if (s.ok() || !Retryable(s) || attempt >= retries) return r;
    BackoffSleep(attempt, rng);
  }
}

// A time given to a flag: RFC 3339 ("2026-11-24T09:00:00Z", any offset), a
// date ("2026-11-24": midnight UTC), or epoch with a unit suffix
// ("1700000000s", "...ms", "...us"). Errors: INVALID_ARGUMENT starting
// with `flag` and listing these forms (the same text for every command).
absl::StatusOr<int64_t> ParseTimeFlag(const char* flag,
                                      const std::string& text);

// The definition of (view, version 0 = latest) and its stream, from the
// server's ListDefinitions. Errors: NOT_FOUND naming the view/version.
absl::StatusOr<std::pair<v1::FeatureViewDef, v1::StreamDef>> FindViewDefinition(
    Client& client, const std::string& name, uint32_t version);

// The bearer token: the first line of `file` if given (trailing
// whitespace dropped), else the environment variable `env` if set, else
// `fallback`. Tokens never come from a flag value (it would land in shell
// history). Errors: INVALID_ARGUMENT naming `flag` (unreadable or empty).
absl::StatusOr<std::string> TokenFrom(const std::string& file, const char* flag,
                                      const char* env,
                                      const std::string& fallback);

// The format of a data file read or written: `flag` ("csv" or "jsonl") if
// given, else `path`'s extension (.csv; .jsonl, .ndjson, .json); `path`
// "-" (stdout) is `stdout_default`. Errors: INVALID_ARGUMENT naming the
// supported ones (an unknown extension such as .txt or .parquet).
absl::StatusOr<std::string> DataFormat(const std::string& flag,
                                       const std::string& path,
                                       const char* stdout_default);

// The view (name, version 0 = latest) in a ListDefinitions answer.
// Errors: NOT_FOUND naming the view/version.
absl::StatusOr<const v1::ViewInfo*> FindViewInfo(
    const v1::ListDefinitionsResponse& defs, const std::string& name,
    uint32_t version);
// The feature service (name, version 0 = latest) in a ListDefinitions
// answer. Errors: NOT_FOUND naming the service/version.
absl::StatusOr<const v1::ServiceInfo*> FindServiceInfo(
    const v1::ListDefinitionsResponse& defs, const std::string& name,
    uint32_t version);

// Parses a --partition flag "K/N" (0 <= K < N). Errors: INVALID_ARGUMENT.
absl::StatusOr<v1::Partition> ParsePartitionFlag(const std::string& text);

}  // namespace rawfeat

#endif  // RAWFEAT_CLIENT_CLI_CLI_UTIL_H_
