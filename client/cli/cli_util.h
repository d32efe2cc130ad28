#ifndef RAWFEAT_CLIENT_CLI_CLI_UTIL_H_
#define RAWFEAT_CLIENT_CLI_CLI_UTIL_H_

// What every rawfeat command shares: one-line failures on stderr.

#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

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

}  // namespace rawfeat

#endif  // RAWFEAT_CLIENT_CLI_CLI_UTIL_H_
