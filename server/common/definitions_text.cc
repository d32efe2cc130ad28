#include "server/common/definitions_text.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace rawfeat {
namespace {

class Collector : public google::protobuf::io::ErrorCollector {
 public:
  explicit Collector(absl::string_view source) : source_(source) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    errors_.push_back(
        absl::StrCat(source_, ":", line + 1, ":", column + 1, ": ", message));
  }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::string source_;
  std::vector<std::string> errors_;
};

}  // namespace

absl::Status ParseTextproto(absl::string_view text, absl::string_view source,
                            google::protobuf::Message* out) {
  Collector collector(source);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  if (!parser.ParseFromString(std::string(text), out)) {
    if (collector.errors().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": not a valid ", out->GetTypeName(), " textproto"));
    }
    return absl::InvalidArgumentError(absl::StrJoin(collector.errors(), "; "));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Definitions> ParseDefinitionsText(absl::string_view text,
                                                     absl::string_view source) {
  v1::Definitions defs;
  absl::Status s = ParseTextproto(text, source, &defs);
  if (!s.ok()) return s;
  return defs;
}

absl::StatusOr<v1::Definitions> ReadDefinitionsFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseDefinitionsText(buf.str(), path);
}

absl::StatusOr<std::vector<std::string>> ListDefinitionFiles(
    const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) {
    return std::vector<std::string>{path};
  }
  if (!std::filesystem::is_directory(path, ec)) {
    return absl::NotFoundError(
        absl::StrCat(path, ": no such file or directory"));
  }
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".textproto") {
      files.push_back(entry.path().string());
    }
  }
  if (ec) return absl::NotFoundError(absl::StrCat(path, ": ", ec.message()));
  if (files.empty()) {
    return absl::NotFoundError(absl::StrCat(path, ": no *.textproto files"));
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace rawfeat
