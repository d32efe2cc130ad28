#include "client/output_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace rawfeat {

absl::Status OutputFile::Open(const std::string& path) {
  path_ = path;
  if (path == "-") {
    stdout_.rdbuf(std::cout.rdbuf());
    return absl::OkStatus();
  }
  file_.open(path + ".partial", std::ios::trunc | std::ios::binary);
  if (!file_) {
    // A local problem: INVALID_ARGUMENT (not a server status) with the
    // OS's reason.
    return LocalError(
        absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status OutputFile::Commit() {
  if (path_ == "-") {
    stdout_.flush();
    if (!stdout_) return absl::DataLossError("stdout: write failed");
    return absl::OkStatus();
  }
  file_.close();
  if (!file_) {
    return LocalError(absl::StrCat(path_, ": write failed: ", strerror(errno)));
  }
  const std::string tmp = path_ + ".partial";
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    return LocalError(
        absl::StrCat(path_, ": cannot rename ", tmp, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

namespace {
constexpr char kLocalPayload[] = "rawfeat.dev/local";
}  // namespace

absl::Status LocalError(absl::string_view message) {
  absl::Status s = absl::InvalidArgumentError(message);
  s.SetPayload(kLocalPayload, absl::Cord("1"));
  return s;
}

bool IsLocalError(const absl::Status& status) {
  return status.GetPayload(kLocalPayload).has_value();
}

absl::Status WriteFileAtomically(const std::string& path,
                                 const std::string& text) {
  OutputFile f;
  absl::Status s = f.Open(path);
  if (!s.ok()) return s;
  f.out() << text;
  return f.Commit();
}

}  // namespace rawfeat
