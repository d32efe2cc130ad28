#ifndef RAWFEAT_CLIENT_CLI_ANALYST_H_
#define RAWFEAT_CLIENT_CLI_ANALYST_H_

// The analyst commands of the rawfeat CLI:
//
//   rawfeat snapshot (--view V [--version N] | --service S
//                    [--service-version N]) --as-of T [--watermark N]
//                    [--partition K/N] --out FILE [--format csv|jsonl]
//   rawfeat join (--view V [--version N] [--entity-column C] | --service S
//                [--service-version N]) [--watermark N] --labels FILE
//                --out FILE [--time-column C] [--time-unit s|ms|us]
//                [--skip-invalid --reject-file F] [--format csv|jsonl]
//
// Both write FILE atomically (FILE.partial, renamed when complete) and a
// sidecar FILE.meta.json with the view or service, version, as-of,
// watermark, server version and row count, so the file can be rebuilt byte
// for byte by passing that watermark back. A service join reads each part's
// key column from the label file (an empty cell gives that part nulls).

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "client/client.h"
#include "client/output_file.h"

namespace rawfeat {

// What an analyst command reads: a view, or a feature service.
struct FeatureSource {
  std::string view;
  uint32_t version = 0;  // of the view; 0 = latest
  std::string service;
  uint32_t service_version = 0;  // 0 = latest

  bool is_service() const { return !service.empty(); }
  // "view" or "service", and its name.
  const char* kind() const { return is_service() ? "service" : "view"; }
  const std::string& name() const { return is_service() ? service : view; }
  // Adds --view/--version and --service/--service-version to `cmd`.
  void AddFlags(CLI::App* cmd);
  // Exactly one of --view and --service. Errors: INVALID_ARGUMENT.
  absl::Status Check() const;
  // The version a read of it uses now (its latest when 0), from the
  // server's definitions. Errors: NOT_FOUND naming it, the RPC's.
  absl::StatusOr<uint32_t> ResolveVersion(Client& client) const;
  // Sets the request's view/version or service/service_version.
  template <typename Request>
  void SetOn(Request* request) const {
    if (is_service()) {
      request->set_service(service);
      request->set_service_version(service_version);
    } else {
      request->set_view(view);
      request->set_version(version);
    }
  }
};

struct SnapshotArgs {
  FeatureSource source;
  std::string as_of;
  uint64_t watermark = 0;
  std::string partition;  // "K/N"
  std::string out;
  std::string format;  // csv | jsonl (default: by extension)
};

struct JoinArgs {
  FeatureSource source;
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
// value type of each output feature of the view or service ("INT64",
// "DOUBLE", "STRING", "BOOL", "LIST<T>"; from ListDefinitions).
struct ServerFacts {
  std::string server_version;
  std::map<std::string, std::string> feature_types;
};
// Asks the server about `source` at `version` (of the view or service; 0 =
// latest). Fields stay empty when it cannot be asked.
ServerFacts GetServerFacts(Client& client, const FeatureSource& source,
                           uint32_t version);

class SnapshotFileWriter {
 public:
  absl::Status Open(const std::string& path, const std::string& format);
  // Writes `chunk`'s rows (`names`: the snapshot's feature names). False if
  // the file cannot be written.
  bool Add(const v1::SnapshotChunk& chunk,
           const google::protobuf::RepeatedPtrField<std::string>& names);
  absl::StatusOr<SnapshotFile> Finish(const FeatureSource& source,
                                      int64_t as_of,
                                      const std::string& partition,
                                      const ServerFacts& facts);
  int64_t rows() const { return result_.rows; }
  // The view or service version the chunks came from (0 before the
  // first).
  uint32_t version() const { return result_.version; }

 private:
  std::string path_;
  std::string format_;
  OutputFile file_;
  google::protobuf::RepeatedPtrField<std::string> names_;
  std::vector<std::string> cells_;
  SnapshotFile result_;
};

// One Snapshot call (of a view or a service) written to `path` ("-" =
// stdout) with a SnapshotFileWriter.
// `progress` (may be null) counts rows. Errors: the RPC's, or the file's.
absl::StatusOr<SnapshotFile> WriteSnapshotFile(
    Client& client, const v1::SnapshotRequest& request, const std::string& path,
    const std::string& format, Progress* progress);

// Registers the subcommands on `app`, filling `*args`.
CLI::App* AddSnapshotCommand(CLI::App* app, SnapshotArgs* args);
CLI::App* AddJoinCommand(CLI::App* app, JoinArgs* args);

// Run a command; return the process exit code (0 ok, 1 failure with a
// one-line reason on stderr).
int RunSnapshot(Client& client, const SnapshotArgs& args);
int RunJoin(Client& client, const JoinArgs& args);

}  // namespace rawfeat

#endif  // RAWFEAT_CLIENT_CLI_ANALYST_H_
