#include "client/output_file.h"

#include <cstdio>
#include <iostream>

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
    return absl::FailedPreconditionError(absl::StrCat(path, ": cannot write"));
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
    return absl::DataLossError(absl::StrCat(path_, ": write failed"));
  }
  const std::string tmp = path_ + ".partial";
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    return absl::DataLossError(absl::StrCat(path_, ": cannot rename ", tmp));
  }
  return absl::OkStatus();
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
