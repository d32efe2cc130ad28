#include "server/storage/backup.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "server/common/status_macros.h"
#include "server/storage/seq_file.h"

namespace rawfeat {
namespace {

namespace fs = std::filesystem;

constexpr char kRootMarker[] = "RAWFEAT_BACKUPS";
constexpr char kManifest[] = "MANIFEST.rawfeat";
constexpr char kManifestHeader[] = "rawfeat backup v1";
constexpr char kCheckpointDir[] = "backup-checkpoint";

// An I/O error as a status: a full disk is RESOURCE_EXHAUSTED.
absl::Status IoError(int error, const std::string& what) {
  const std::string msg = absl::StrCat(what, ": ", std::strerror(error));
  if (error == ENOSPC || error == EDQUOT) {
    return absl::ResourceExhaustedError(absl::StrCat("disk full: ", msg));
  }
  return absl::UnavailableError(msg);
}

absl::Status SyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return IoError(errno, absl::StrCat("open ", path));
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  return rc == 0 ? absl::OkStatus()
                 : IoError(error, absl::StrCat("fsync ", path));
}

// Copies `from` into the new file `to` (which must not exist) and syncs it.
absl::Status CopyFileSynced(const std::string& from, const std::string& to,
                            uint64_t* bytes) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return IoError(errno, absl::StrCat("open ", from));
  const int out =
      ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    const int error = errno;
    ::close(in);
    return IoError(error, absl::StrCat("create ", to));
  }
  std::vector<char> buf(1 << 20);
  absl::Status status;
  while (status.ok()) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = IoError(errno, absl::StrCat("read ", from));
      break;
    }
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(out, buf.data() + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        status = IoError(errno, absl::StrCat("write ", to));
        break;
      }
      done += w;
      *bytes += static_cast<uint64_t>(w);
    }
  }
  if (status.ok() && ::fsync(out) != 0) {
    status = IoError(errno, absl::StrCat("fsync ", to));
  }
  ::close(in);
  ::close(out);
  return status;
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::Status WriteSmallFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) return IoError(errno, absl::StrCat("write ", path));
  return SyncPath(path, O_RDONLY);
}

bool IsTable(const fs::path& p) { return p.extension() == ".sst"; }

// Removes directory trees (or files) when it goes out of scope, unless
// kept.
struct RemoveOnExit {
  ~RemoveOnExit() {
    std::error_code ignored;
    if (keep) return;
    for (const std::string& path : paths) fs::remove_all(path, ignored);
  }
  std::vector<std::string> paths;
  bool keep = false;
};

bool EmptyOrAbsent(const std::string& dir) {
  std::error_code ec;
  return !fs::exists(dir, ec) || fs::is_empty(dir, ec);
}

// A backup's manifest: its watermark and its table files (name, size).
struct Manifest {
  uint64_t watermark = 0;
  std::vector<std::pair<std::string, uint64_t>> tables;

  std::string Text() const {
    std::string out =
        absl::StrCat(kManifestHeader, "\nwatermark ", watermark, "\n");
    for (const auto& [name, size] : tables) {
      absl::StrAppend(&out, "table ", name, " ", size, "\n");
    }
    return out;
  }

  static absl::StatusOr<Manifest> Read(const std::string& dir) {
    const std::string path = absl::StrCat(dir, "/", kManifest);
    ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
    Manifest m;
    bool header = false, watermark = false;
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (line.empty()) continue;
      if (line == kManifestHeader) {
        header = true;
        continue;
      }
      std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
      uint64_t v = 0;
      if (parts.size() == 2 && parts[0] == "watermark" &&
          absl::SimpleAtoi(parts[1], &v)) {
        m.watermark = v;
        watermark = true;
      } else if (parts.size() == 3 && parts[0] == "table" &&
                 absl::SimpleAtoi(parts[2], &v)) {
        m.tables.emplace_back(std::string(parts[1]), v);
      } else {
        return absl::DataLossError(
            absl::StrCat(path, ": malformed line '", line, "'"));
      }
    }
    if (!header || !watermark) {
      return absl::DataLossError(absl::StrCat(path, " is malformed"));
    }
    return m;
  }
};

// Makes `root` a backup root of the store whose RocksDB IDENTITY is
// `identity`, or checks that it is one.
absl::Status PrepareRoot(const std::string& root, const std::string& identity) {
  const std::string marker = absl::StrCat(root, "/", kRootMarker);
  auto existing = ReadSmallFile(marker);
  if (existing.ok()) {
    if (*existing != identity) {
      return absl::FailedPreconditionError(absl::StrCat(
          root, " holds backups of another store (", kRootMarker,
          " names another RocksDB identity); back up into a new directory"));
    }
    return absl::OkStatus();
  }
  if (!EmptyOrAbsent(root)) {
    return absl::FailedPreconditionError(absl::StrCat(
        root,
        " exists, is not empty and is not a rawfeat backup directory (no ",
        kRootMarker, ")"));
  }
  std::error_code ec;
  fs::create_directories(absl::StrCat(root, "/shared"), ec);
  if (ec) return IoError(ec.value(), absl::StrCat("create ", root));
  RETURN_IF_ERROR(WriteSmallFile(marker, identity));
  return SyncPath(root, O_RDONLY | O_DIRECTORY);
}

}  // namespace

absl::StatusOr<BackupResult> BackupStore(EventStore* store,
                                         const std::string& root_arg) {
  if (root_arg.empty() || root_arg[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("backup directory '", root_arg,
                     "' must be an absolute path on the server's machine"));
  }
  const std::string root = std::string(absl::StripSuffix(root_arg, "/"));
  // One backup at a time: they share the checkpoint directory.
  static absl::Mutex* const mu = new absl::Mutex();
  absl::MutexLock lock(mu);
  const std::string checkpoint =
      absl::StrCat(store->dir(), "/", kCheckpointDir);
  std::error_code ec;
  fs::remove_all(checkpoint, ec);
  // The checkpoint's table files are hard links into the data dir: cheap,
  // and the files cannot go away while they are copied.
  ASSIGN_OR_RETURN(const uint64_t w, store->Checkpoint(checkpoint));
  const RemoveOnExit remove_checkpoint{{checkpoint}};

  RETURN_IF_ERROR(PrepareRoot(root, store->Identity()));
  BackupResult result;
  result.watermark = w;
  result.dir = absl::StrCat(root, "/backup-", w);
  if (fs::exists(absl::StrCat(result.dir, "/", kManifest), ec)) {
    return result;  // the same watermark backed up before: identical
  }
  const std::string tmp = result.dir + ".tmp";
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return IoError(ec.value(), absl::StrCat("create ", tmp));
  RemoveOnExit remove_tmp{{tmp}};
  // Table files this backup copied into shared/: a failed backup takes
  // them back, so it leaves nothing on a full disk (files an earlier
  // backup copied stay, they are in use).
  RemoveOnExit remove_copied;

  Manifest manifest;
  manifest.watermark = w;
  for (const auto& entry : fs::directory_iterator(checkpoint, ec)) {
    const fs::path& p = entry.path();
    const uint64_t size = entry.file_size(ec);
    if (ec) return IoError(ec.value(), absl::StrCat("stat ", p.string()));
    if (IsTable(p)) {
      const std::string shared =
          absl::StrCat(root, "/shared/", p.filename().string());
      std::error_code size_ec;
      if (fs::file_size(shared, size_ec) == size && !size_ec) {
        ++result.files_reused;  // table files never change once written
      } else {
        fs::remove(shared, size_ec);
        const std::string part = shared + ".tmp";
        fs::remove(part, size_ec);
        absl::Status copied =
            CopyFileSynced(p.string(), part, &result.bytes_copied);
        if (!copied.ok()) {
          fs::remove(part, size_ec);  // no half file stays behind
          return copied;
        }
        fs::rename(part, shared, ec);
        if (ec) return IoError(ec.value(), absl::StrCat("rename ", part));
        remove_copied.paths.push_back(shared);
        ++result.files_copied;
      }
      manifest.tables.emplace_back(p.filename().string(), size);
    } else {
      RETURN_IF_ERROR(CopyFileSynced(
          p.string(), absl::StrCat(tmp, "/", p.filename().string()),
          &result.bytes_copied));
      ++result.files_copied;
    }
  }
  if (ec) return IoError(ec.value(), absl::StrCat("list ", checkpoint));
  // The restored store continues at W + 1, as after a clean stop.
  SeqFile seq;
  seq.reserved = w + 1;
  seq.clean_next = w + 1;
  RETURN_IF_ERROR(seq.Write(tmp));
  RETURN_IF_ERROR(
      WriteSmallFile(absl::StrCat(tmp, "/", kManifest), manifest.Text()));
  RETURN_IF_ERROR(SyncPath(tmp, O_RDONLY | O_DIRECTORY));
  RETURN_IF_ERROR(
      SyncPath(absl::StrCat(root, "/shared"), O_RDONLY | O_DIRECTORY));
  fs::rename(tmp, result.dir, ec);
  if (ec) return IoError(ec.value(), absl::StrCat("rename ", tmp));
  remove_tmp.keep = true;
  remove_copied.keep = true;
  RETURN_IF_ERROR(SyncPath(root, O_RDONLY | O_DIRECTORY));
  return result;
}

absl::StatusOr<uint64_t> RestoreBackup(const std::string& backup_arg,
                                       const std::string& data_dir) {
  std::string backup = std::string(absl::StripSuffix(backup_arg, "/"));
  std::error_code ec;
  if (fs::exists(absl::StrCat(backup, "/", kRootMarker), ec)) {
    // A root: its newest backup (the highest watermark).
    uint64_t best = 0;
    std::string newest;
    for (const auto& entry : fs::directory_iterator(backup, ec)) {
      absl::string_view name = entry.path().filename().native();
      uint64_t w = 0;
      if (absl::ConsumePrefix(&name, "backup-") && absl::SimpleAtoi(name, &w) &&
          (newest.empty() || w > best)) {
        best = w;
        newest = entry.path().string();
      }
    }
    if (newest.empty()) {
      return absl::NotFoundError(absl::StrCat(backup, " holds no backup"));
    }
    backup = newest;
  }
  ASSIGN_OR_RETURN(const Manifest manifest, Manifest::Read(backup));
  if (!EmptyOrAbsent(data_dir)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "restore into ", data_dir, ": it exists and is not empty"));
  }
  const std::string shared =
      (fs::path(backup).parent_path() / "shared").string();
  // Written beside data_dir and renamed onto it when complete, so a failed
  // restore leaves no half store behind (rename replaces an empty dir).
  const std::string target =
      std::string(absl::StripSuffix(data_dir, "/")) + ".restoring";
  fs::remove_all(target, ec);
  fs::create_directories(target, ec);
  if (ec) return IoError(ec.value(), absl::StrCat("create ", target));
  RemoveOnExit remove_target{{target}};
  uint64_t bytes = 0;
  for (const auto& [name, size] : manifest.tables) {
    const std::string from = absl::StrCat(shared, "/", name);
    std::error_code size_ec;
    if (fs::file_size(from, size_ec) != size || size_ec) {
      return absl::DataLossError(
          absl::StrCat("backup ", backup, ": table file ", from,
                       " is missing or not ", size, " bytes"));
    }
    RETURN_IF_ERROR(
        CopyFileSynced(from, absl::StrCat(target, "/", name), &bytes));
  }
  for (const auto& entry : fs::directory_iterator(backup, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == kManifest) continue;
    RETURN_IF_ERROR(CopyFileSynced(entry.path().string(),
                                   absl::StrCat(target, "/", name), &bytes));
  }
  if (ec) return IoError(ec.value(), absl::StrCat("list ", backup));
  RETURN_IF_ERROR(SyncPath(target, O_RDONLY | O_DIRECTORY));
  fs::rename(target, data_dir, ec);
  if (ec) {
    return IoError(ec.value(),
                   absl::StrCat("rename ", target, " to ", data_dir));
  }
  remove_target.keep = true;
  RETURN_IF_ERROR(SyncPath(fs::absolute(data_dir).parent_path().string(),
                           O_RDONLY | O_DIRECTORY));
  return manifest.watermark;
}

}  // namespace rawfeat
