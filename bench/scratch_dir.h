#ifndef RAWFEAT_BENCH_SCRATCH_DIR_H_
#define RAWFEAT_BENCH_SCRATCH_DIR_H_

// The load tools' working directory: the one the user named (kept, and
// created if missing), or a fresh /tmp/rawfeat-<name>-XXXXXX removed on
// every exit path.

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace rawfeat {

class ScratchDir {
 public:
  ScratchDir(const std::string& given, const std::string& name) {
    if (!given.empty()) {
      path_ = given;
      // Created if missing (the tools write files into it before the
      // server starts, which would fail quietly).
      std::error_code ec;
      std::filesystem::create_directories(path_, ec);
      return;
    }
    std::string tmpl = "/tmp/rawfeat-" + name + "-XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) {
      path_ = tmpl;
      owned_ = true;
    }
  }
  ~ScratchDir() {
    std::error_code ec;
    if (owned_) std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool owned_ = false;
};

}  // namespace rawfeat

#endif  // RAWFEAT_BENCH_SCRATCH_DIR_H_
