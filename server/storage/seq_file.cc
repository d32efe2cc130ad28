#include "server/storage/seq_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace rawfeat {
namespace {

constexpr char kName[] = "SEQ";
constexpr char kHeader[] = "rawfeat seq file v1";

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// Writes all of `data` to `fd` and syncs it.
absl::Status WriteAndSync(int fd, const std::string& data,
                          const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(absl::StrCat("write ", path));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return Errno(absl::StrCat("fsync ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SeqFile> SeqFile::Read(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", kName);
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
  std::stringstream text;
  text << in.rdbuf();
  SeqFile file;
  bool header = false, reserved = false, clean = false;
  for (absl::string_view line : absl::StrSplit(text.str(), '\n')) {
    if (line.empty()) continue;
    if (line == kHeader) {
      header = true;
      continue;
    }
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(line, absl::MaxSplits(' ', 1));
    uint64_t v = 0;
    if (!absl::SimpleAtoi(kv.second, &v)) {
      return absl::DataLossError(
          absl::StrCat(path, ": malformed line '", line, "'"));
    }
    if (kv.first == "reserved") {
      file.reserved = v;
      reserved = true;
    } else if (kv.first == "clean_next") {
      file.clean_next = v;
      clean = true;
    }
  }
  if (!header || !reserved || !clean) {
    return absl::DataLossError(absl::StrCat(
        path, " is malformed (expected '", kHeader,
        "', 'reserved N' and 'clean_next N'); move it away to start without "
        "its checks"));
  }
  return file;
}

absl::Status SeqFile::Write(const std::string& dir) const {
  const std::string path = absl::StrCat(dir, "/", kName);
  const std::string tmp = path + ".tmp";
  const std::string data = absl::StrCat(kHeader, "\nreserved ", reserved,
                                        "\nclean_next ", clean_next, "\n");
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return Errno(absl::StrCat("create ", tmp));
  absl::Status s = WriteAndSync(fd, data, tmp);
  if (::close(fd) != 0 && s.ok()) s = Errno(absl::StrCat("close ", tmp));
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Errno(absl::StrCat("rename ", tmp));
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd < 0) return Errno(absl::StrCat("open ", dir));
  const int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return Errno(absl::StrCat("fsync ", dir));
  return absl::OkStatus();
}

}  // namespace rawfeat
