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

namespace rawfeat {

// A failure reported as one line on stderr; returns exit code 1.
inline int Fail(const absl::Status& s) {
  std::string msg(s.message());
  for (char& c : msg) {
    if (c == '\n') c = ' ';
  }
  std::fprintf(stderr, "rawfeat: %s: %s\n",
               absl::StatusCodeToString(s.code()).c_str(), msg.c_str());
  return 1;
}

inline int Fail(absl::string_view msg) {
  std::fprintf(stderr, "rawfeat: %s\n", std::string(msg).c_str());
  return 1;
}

// Sends one batch, retrying UNAVAILABLE / DEADLINE_EXCEEDED up to
// `retries` times with exponential backoff (100 ms doubling to 10 s) and
// full jitter. Safe because ingest is idempotent by event id.
absl::StatusOr<v1::IngestResponse> SendWithRetries(Client& client,
                                                   const v1::IngestRequest& req,
                                                   int retries,
                                                   std::mt19937_64& rng);

// The definition of (view, version 0 = latest) and its stream, from the
// server's ListDefinitions. Errors: NOT_FOUND naming the view/version.
absl::StatusOr<std::pair<v1::FeatureViewDef, v1::StreamDef>>
FindViewDefinition(Client& client, const std::string& name, uint32_t version);

// The bearer token: the first line of `file` if given (trailing
// whitespace dropped), else the environment variable `env` if set, else
// `fallback`. Tokens never come from a flag value (it would land in shell
// history). Errors: INVALID_ARGUMENT naming `flag` (unreadable or empty).
absl::StatusOr<std::string> TokenFrom(const std::string& file,
                                      const char* flag, const char* env,
                                      const std::string& fallback);

// Parses a --partition flag "K/N" (0 <= K < N). Errors: INVALID_ARGUMENT.
absl::StatusOr<v1::Partition> ParsePartitionFlag(const std::string& text);

}  // namespace rawfeat

#endif  // RAWFEAT_CLIENT_CLI_CLI_UTIL_H_
