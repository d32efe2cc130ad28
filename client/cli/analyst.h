#ifndef RAWFEAT_CLIENT_CLI_ANALYST_H_
#define RAWFEAT_CLIENT_CLI_ANALYST_H_

// The analyst commands of the rawfeat CLI:
//
//   rawfeat snapshot --view V [--version N] --as-of T [--watermark N]
//                    [--partition K/N] --out FILE [--format csv|jsonl]
//   rawfeat join --view V [--version N] [--watermark N] --labels FILE
//                --out FILE [--entity-column C] [--time-column C]
//                [--time-unit s|ms|us] [--skip-invalid --reject-file F]
//                [--format csv|jsonl]
//
// Both write FILE atomically (FILE.partial, renamed when complete) and a
// sidecar FILE.meta.json with the view, version, as-of, watermark, server
// version and row count, so the file can be rebuilt byte for byte by
// passing that watermark back.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "client/client.h"
#include "client/output_file.h"

namespace rawfeat {

struct SnapshotArgs {
  std::string view;
  uint32_t version = 0;
  std::string as_of;
  uint64_t watermark = 0;
  std::string partition;  // "K/N"
  std::string out;
  std::string format;  // csv | jsonl (default: by extension)
};

struct JoinArgs {
  std::string view;
  uint32_t version = 0;
  uint64_t watermark = 0;
  std::string labels;
  std::string out;
  std::string entity_column;  // default: the stream's entity field
  std::string time_column;    // default: the stream's time field
  std::string time_unit = "none";
  bool skip_invalid = false;
  std::string reject_file;
  std::string format;
};

class Progress;

struct SnapshotFile {
  int64_t rows = 0;
  uint64_t watermark = 0;
  uint32_t version = 0;
};

// Writes snapshot chunks of one as-of time to a file (atomically: FILE is
// renamed into place by Finish, which also writes FILE.meta.json). CSV:
// entity then features, lists as JSON arrays, null empty; or JSON Lines.
// Not thread-safe.
// What a file's .meta.json says about the server: its version, and the
// value type of each feature of the view ("INT64", "DOUBLE", "STRING",
// "BOOL", "LIST<T>"; from ListDefinitions).
struct ServerFacts {
  std::string server_version;
  std::map<std::string, std::string> feature_types;
};
// Asks the server (fields stay empty when it cannot be asked).
ServerFacts GetServerFacts(Client& client, const std::string& view,
                           uint32_t version);

class SnapshotFileWriter {
 public:
  absl::Status Open(const std::string& path, const std::string& format);
  // Writes `chunk`'s rows (`names`: the snapshot's feature names). False if
  // the file cannot be written.
  bool Add(const v1::SnapshotChunk& chunk,
           const google::protobuf::RepeatedPtrField<std::string>& names);
  absl::StatusOr<SnapshotFile> Finish(const std::string& view, int64_t as_of,
                                      const std::string& partition,
                                      const ServerFacts& facts);
  int64_t rows() const { return result_.rows; }
  // The view version the chunks came from (0 before the first).
  uint32_t version() const { return result_.version; }

 private:
  std::string path_;
  std::string format_;
  OutputFile file_;
  google::protobuf::RepeatedPtrField<std::string> names_;
  std::vector<std::string> cells_;
  SnapshotFile result_;
};

// One Snapshot call written to `path` ("-" = stdout) with a SnapshotFileWriter.
// `progress` (may be null) counts rows. Errors: the RPC's, or the file's.
absl::StatusOr<SnapshotFile> WriteSnapshotFile(
    Client& client, const v1::SnapshotRequest& request,
    const std::string& path, const std::string& format, Progress* progress);

// Registers the subcommands on `app`, filling `*args`.
CLI::App* AddSnapshotCommand(CLI::App* app, SnapshotArgs* args);
CLI::App* AddJoinCommand(CLI::App* app, JoinArgs* args);

// Run a command; return the process exit code (0 ok, 1 failure with a
// one-line reason on stderr).
int RunSnapshot(Client& client, const SnapshotArgs& args);
int RunJoin(Client& client, const JoinArgs& args);

}  // namespace rawfeat

#endif  // RAWFEAT_CLIENT_CLI_ANALYST_H_
