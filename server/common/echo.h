#ifndef RAWFEAT_SERVER_COMMON_ECHO_H_
#define RAWFEAT_SERVER_COMMON_ECHO_H_

// Client input quoted back in error messages, bounded: a status message
// travels in gRPC trailers, whose size clients limit (8 KiB by default), so
// an error that echoed a 7 KB field name whole would reach the client as a
// metadata error instead of itself.

#include <cstddef>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace rawfeat {

// Most bytes of one echoed value.
inline constexpr size_t kMaxEcho = 200;

// `input` as is when short; else its first kMaxEcho bytes (not cutting a
// UTF-8 sequence) and how long it was.
inline std::string Echo(absl::string_view input, size_t max = kMaxEcho) {
  if (input.size() <= max) return std::string(input);
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(input[cut]) & 0xc0) == 0x80) {
    --cut;
  }
  return absl::StrCat(input.substr(0, cut), "...(", input.size(), " bytes)");
}

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_COMMON_ECHO_H_
