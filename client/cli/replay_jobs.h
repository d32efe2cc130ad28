#ifndef RAWFEAT_CLIENT_CLI_REPLAY_JOBS_H_
#define RAWFEAT_CLIENT_CLI_REPLAY_JOBS_H_

// The replay-job commands of the rawfeat CLI:
//
//   rawfeat copy --from HOST:PORT --to HOST:PORT [--stream S]
//                [--from-time T1] [--to-time T2] [--after-seq N]
//                [--partition K/N] [--definitions] [--max-events N]
//   rawfeat diff (--view V | --service S) --versions A,B --as-of T
//                [--watermark N]
//                [--out FILE] [--examples 3]
//   rawfeat backfill --view V [--version N] --from D1 --to D2 [--every 1d]
//                    [--tz ZONE] [--watermark N] --out DIR [--format csv]
//
// copy replays raw events of one server (ReadEvents) into another (Ingest
// batches, each retried), keeping event ids, so copying twice or resuming
// with --after-seq creates no duplicates. diff compares the features two
// versions of a view share, entity by entity, at one watermark; its exit
// code is 0 when identical, 1 when different, 2 on error.

#include <cstdint>
#include <string>

#include "CLI/CLI.hpp"
#include "client/cli/analyst.h"
#include "client/client.h"

namespace rawfeat {

struct CopyArgs {
  std::string from;
  std::string to;
  // Token files of each side; empty: RAWFEAT_FROM_TOKEN / RAWFEAT_TO_TOKEN,
  // else the global token (--token-file, RAWFEAT_TOKEN).
  std::string from_token_file;
  std::string to_token_file;
  std::string stream;  // empty: every stream
  std::string from_time;
  std::string to_time;
  uint64_t after_seq = 0;
  std::string partition;  // "K/N"
  bool definitions = false;
  int64_t max_events = 0;  // 0: no limit
  int batch_size = 1000;
  int retries = 8;
};

struct DiffArgs {
  std::string view;
  std::string service;   // instead of view: a service keyed by one column
  std::string versions;  // "A,B"
  std::string as_of;
  uint64_t watermark = 0;
  std::string out;  // empty: stdout
  int examples = 3;
};

struct BackfillArgs {
  FeatureSource source;  // a view, or a feature service keyed by one column
  std::string from;      // YYYY-MM-DD (local date in tz) or a time
  std::string to;        // inclusive
  std::string every = "1d";
  std::string tz = "UTC";
  uint64_t watermark = 0;
  std::string out;  // a directory
  std::string format = "csv";
  bool separate_passes = false;
};

CLI::App* AddCopyCommand(CLI::App* app, CopyArgs* args);
CLI::App* AddBackfillCommand(CLI::App* app, BackfillArgs* args);
CLI::App* AddDiffCommand(CLI::App* app, DiffArgs* args);

// Exit codes: copy 0 ok / 1 failure; diff 0 identical / 1 different /
// 2 error. Failures print one line on stderr.
// `options`: the connection settings (TLS) of every server the command
// talks to.
int RunCopy(const CopyArgs& args, const ClientOptions& options);
int RunDiff(const std::string& server, const DiffArgs& args,
            const ClientOptions& options);
int RunBackfill(const std::string& server, const BackfillArgs& args,
                const ClientOptions& options);

}  // namespace rawfeat

#endif  // RAWFEAT_CLIENT_CLI_REPLAY_JOBS_H_
