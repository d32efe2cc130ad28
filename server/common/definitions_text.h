#ifndef RAWFEAT_SERVER_COMMON_DEFINITIONS_TEXT_H_
#define RAWFEAT_SERVER_COMMON_DEFINITIONS_TEXT_H_

// Reading schemas/ files: textproto `rawfeat.v1.Definitions`. Thread-safe.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "rawfeat/v1/rawfeat.pb.h"

namespace rawfeat {

// Parses any message from textproto. Errors: INVALID_ARGUMENT
// "SOURCE:LINE:COL: reason" (every error, joined by "; ").
absl::Status ParseTextproto(absl::string_view text, absl::string_view source,
                            google::protobuf::Message* out);

// Parses textproto. Errors: INVALID_ARGUMENT "SOURCE:LINE:COL: reason".
absl::StatusOr<v1::Definitions> ParseDefinitionsText(absl::string_view text,
                                                     absl::string_view source);

// Reads and parses one file. Errors: NOT_FOUND / INVALID_ARGUMENT naming it.
absl::StatusOr<v1::Definitions> ReadDefinitionsFile(const std::string& path);

// The *.textproto files of `path` in name order (or `path` itself if it is a
// file). Errors: NOT_FOUND if it does not exist or holds no such file.
absl::StatusOr<std::vector<std::string>> ListDefinitionFiles(
    const std::string& path);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_COMMON_DEFINITIONS_TEXT_H_
