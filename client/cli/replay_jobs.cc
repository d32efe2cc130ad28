#include "client/cli/replay_jobs.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "client/cli/analyst.h"
#include "client/cli/cli_util.h"
#include "client/client.h"
#include "client/output_file.h"
#include "client/progress.h"
#include "client/records.h"
#include "nlohmann/json.hpp"
#include "server/common/time_util.h"
#include "server/common/wire.h"

namespace rawfeat {

// ------------------------------------------------------------------ copy

CLI::App* AddCopyCommand(CLI::App* app, CopyArgs* args) {
  auto* cmd = app->add_subcommand(
      "copy", "replay raw events from one server into another (ids kept)");
  cmd->add_option("--from", args->from, "source rawfeatd HOST:PORT")
      ->required();
  cmd->add_option("--to", args->to, "target rawfeatd HOST:PORT")->required();
  cmd->add_option("--from-token-file", args->from_token_file,
                  "the source's bearer token (default: $RAWFEAT_FROM_TOKEN, "
                  "else the global token)");
  cmd->add_option("--to-token-file", args->to_token_file,
                  "the target's bearer token (default: $RAWFEAT_TO_TOKEN, "
                  "else the global token)");
  cmd->add_option("--stream", args->stream, "one stream (default: all)");
  cmd->add_option("--from-time", args->from_time, "event time >= T");
  cmd->add_option("--to-time", args->to_time, "event time < T");
  cmd->add_option("--after-seq", args->after_seq,
                  "only source seq > N (resume a copy from its last seq)");
  cmd->add_option("--partition", args->partition,
                  "K/N: only entity-hash partition K of N (parallel workers)");
  cmd->add_flag("--definitions", args->definitions,
                "first apply the source's streams, views and services");
  cmd->add_option("--max-events", args->max_events,
                  "stop after N events (copy in slices)");
  cmd->add_option("--batch-size", args->batch_size, "events per batch")
      ->capture_default_str();
  cmd->add_option("--retries", args->retries,
                  "retries of a batch on UNAVAILABLE/DEADLINE_EXCEEDED")
      ->capture_default_str();
  return cmd;
}

int RunCopy(const CopyArgs& args, const ClientOptions& options) {
  if (args.batch_size < 1) return Fail("--batch-size must be >= 1");
  // One token per side: a reader of the source, a writer of the target.
  ClientOptions source_options = options, target_options = options;
  auto from_token = TokenFrom(args.from_token_file, "--from-token-file",
                              "RAWFEAT_FROM_TOKEN", options.token);
  if (!from_token.ok()) return Fail(from_token.status());
  source_options.token = std::move(*from_token);
  auto to_token = TokenFrom(args.to_token_file, "--to-token-file",
                            "RAWFEAT_TO_TOKEN", options.token);
  if (!to_token.ok()) return Fail(to_token.status());
  target_options.token = std::move(*to_token);
  Client source(args.from, source_options);
  Client target(args.to, target_options);
  v1::ReadEventsRequest read;
  read.set_after_seq(args.after_seq);
  if (!args.from_time.empty()) {
    auto t = ParseTimeFlag("--from-time", args.from_time);
    if (!t.ok()) return Fail(t.status().message());
    *read.mutable_from_time() = MicrosToTimestamp(*t);
  }
  if (!args.to_time.empty()) {
    auto t = ParseTimeFlag("--to-time", args.to_time);
    if (!t.ok()) return Fail(t.status().message());
    *read.mutable_to_time() = MicrosToTimestamp(*t);
  }
  if (!args.partition.empty()) {
    auto partition = ParsePartitionFlag(args.partition);
    if (!partition.ok()) return Fail(partition.status().message());
    *read.mutable_partition() = *partition;
  }
  // Every call before the first batch is retried like the batches (a server
  // that is starting or restarting is not a failed copy); applying the same
  // definitions twice is a no-op.
  std::mt19937_64 rng(std::random_device{}());
  auto defs =
      WithRetries(args.retries, rng, [&] { return source.ListDefinitions(); });
  if (!defs.ok()) return Fail(defs.status());
  if (args.definitions) {
    v1::ApplyDefinitionsRequest apply;
    for (const auto& s : defs->streams()) {
      *apply.mutable_definitions()->add_streams() = s.definition();
    }
    for (const auto& v : defs->views()) {
      *apply.mutable_definitions()->add_views() = v.definition();
    }
    for (const auto& sv : defs->services()) {
      *apply.mutable_definitions()->add_services() = sv.definition();
    }
    auto r = WithRetries(args.retries, rng,
                         [&] { return target.ApplyDefinitions(apply); });
    if (!r.ok()) return Fail(r.status());
    std::fprintf(stderr, "definitions: %d changes on the target\n",
                 r->changes_size());
  }
  std::vector<std::string> streams;
  for (const auto& s : defs->streams()) {
    if (args.stream.empty() || s.definition().name() == args.stream) {
      streams.push_back(s.definition().name());
    }
  }
  if (streams.empty()) {
    return Fail(absl::StrCat("stream '", args.stream,
                             "' is not defined on the source"));
  }

  Progress progress("copy", 0);
  int64_t copied = 0, accepted = 0, duplicates = 0;
  uint64_t last_seq = args.after_seq;  // every source seq <= this is copied
  uint64_t watermark = 0;
  std::string last_stream;
  for (const std::string& stream : streams) {
    read.set_stream(stream);
    read.set_watermark(watermark);  // all streams at the first one's
    // The batch as IngestRequest wire bytes: the stream, then each event's
    // bytes as the source sent them (their seq is ignored on ingest).
    std::string batch;
    wire::PutBytesField(&batch, v1::IngestRequest::kStreamFieldNumber, stream);
    const size_t header = batch.size();
    int64_t batch_events = 0;
    uint64_t batch_last_seq = last_seq;
    absl::Status failed;
    auto flush = [&]() {
      if (batch_events == 0) return true;
      // Retrying is safe: ingest is idempotent by event id.
      auto r = WithRetries(args.retries, rng,
                           [&] { return target.IngestEncoded(batch); });
      if (!r.ok()) {
        failed = r.status();
        return false;
      }
      if (r->rejected_size() > 0) {
        const auto& e = r->rejected(0);
        failed = absl::FailedPreconditionError(absl::StrCat(
            "the target refused event '", e.event_id(), "' of stream '", stream,
            "': ", e.field(), e.field().empty() ? "" : ": ", e.reason()));
        return false;
      }
      accepted += r->accepted();
      duplicates += r->duplicates();
      copied += batch_events;
      last_seq = batch_last_seq;
      batch.resize(header);
      batch_events = 0;
      progress.Update(0, copied);
      return true;
    };
    bool limit_hit = false;
    absl::Status s = source.ReadEventViews(read, [&](const IngestBatch& chunk,
                                                     uint64_t chunk_watermark) {
      watermark = chunk_watermark;
      for (const IngestEvent& e : chunk.events) {
        if (args.max_events > 0 && copied + batch_events >= args.max_events) {
          limit_hit = true;
          return false;
        }
        wire::PutBytesField(&batch, v1::IngestRequest::kEventsFieldNumber,
                            e.bytes);
        ++batch_events;
        batch_last_seq = e.seq;
        if (batch_events >= args.batch_size && !flush()) return false;
      }
      return true;
    });
    if (s.ok() && failed.ok()) flush();
    progress.Done();
    if (!s.ok()) return Fail(s);
    if (!failed.ok()) {
      return Fail(absl::Status(
          failed.code(), absl::StrCat(failed.message(), " (stream '", stream,
                                      "' copied through source seq ", last_seq,
                                      "; resume with --stream ", stream,
                                      " --after-seq ", last_seq, ")")));
    }
    last_stream = stream;
    if (limit_hit) break;
  }
  // Seqs are global, so a resume point belongs to one stream: resume with
  // --stream and --after-seq (streams after it were not started).
  std::printf(
      "copied %lld events (%lld new on the target, %lld already there) "
      "through source seq %llu of stream '%s'; source watermark %llu\n",
      static_cast<long long>(copied), static_cast<long long>(accepted),
      static_cast<long long>(duplicates),
      static_cast<unsigned long long>(last_seq), last_stream.c_str(),
      static_cast<unsigned long long>(watermark));
  return 0;
}

// ------------------------------------------------------------------ diff

CLI::App* AddDiffCommand(CLI::App* app, DiffArgs* args) {
  auto* cmd = app->add_subcommand(
      "diff",
      "compare two versions of a view or service entity by entity (exit "
      "0/1/2)");
  cmd->add_option("--view", args->view, "view name");
  cmd->add_option("--service", args->service,
                  "feature service name (instead of --view; one key column)");
  cmd->add_option("--versions", args->versions, "A,B")->required();
  cmd->add_option("--as-of", args->as_of,
                  "RFC 3339, or epoch with a unit suffix (s, ms, us)")
      ->required();
  cmd->add_option("--watermark", args->watermark, "0 = latest (pinned once)");
  cmd->add_option("--out", args->out, "report file (default: stdout)");
  cmd->add_option("--examples", args->examples,
                  "differing entities listed per feature")
      ->capture_default_str();
  return cmd;
}

namespace {

struct FeatureDiff {
  std::string name;
  int a = -1, b = -1;  // positions in each version
  int64_t compared = 0, differing = 0;
  double max_abs = 0, max_rel = 0;
  std::vector<std::string> examples;
};

bool Numeric(const v1::Value& v, double* out) {
  if (v.kind_case() == v1::Value::kInt64Value) {
    *out = static_cast<double>(v.int64_value());
    return true;
  }
  if (v.kind_case() == v1::Value::kDoubleValue) {
    *out = v.double_value();
    return true;
  }
  return false;
}

}  // namespace

int RunDiff(const std::string& server, const DiffArgs& args,
            const ClientOptions& options) {
  // Errors exit 2 (1 means "different").
  const auto error = [](const auto& what) {
    Fail(what);
    return 2;
  };
  if (args.view.empty() == args.service.empty()) {
    return error(LocalError("give --view or --service (one of them)"));
  }
  const bool service = !args.service.empty();
  std::vector<std::string> parts = absl::StrSplit(args.versions, ',');
  uint32_t va = 0, vb = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &va) ||
      !absl::SimpleAtoi(parts[1], &vb) || va == 0 || vb == 0) {
    return error("--versions must be A,B (two version numbers)");
  }
  auto as_of = ParseTimeFlag("--as-of", args.as_of);
  if (!as_of.ok()) return error(std::string(as_of.status().message()));
  Client client(server, options);
  v1::SnapshotRequest req;
  req.set_view(args.view);
  req.set_service(args.service);
  *req.mutable_as_of() = MicrosToTimestamp(*as_of);
  req.set_watermark(args.watermark);
  const auto set_version = [&](uint32_t v) {
    service ? req.set_service_version(v) : req.set_version(v);
  };

  // Version A in memory (entity -> values), then B streamed against it.
  std::vector<std::string> names_a, names_b;
  uint64_t watermark = 0;
  absl::flat_hash_map<std::string, std::vector<v1::Value>> rows_a;
  set_version(va);
  absl::Status s = client.Snapshot(req, [&](const v1::SnapshotChunk& c) {
    if (names_a.empty()) {
      names_a.assign(c.feature_names().begin(), c.feature_names().end());
    }
    watermark = c.watermark();
    for (const auto& row : c.rows()) {
      rows_a[row.entity()].assign(row.values().begin(), row.values().end());
    }
    return true;
  });
  if (!s.ok()) {
    return error(s);
  }
  std::vector<FeatureDiff> shared;
  std::vector<std::string> only_a, only_b;
  int64_t entities = 0, only_in_a = 0, only_in_b = 0;
  set_version(vb);
  req.set_watermark(watermark);  // both versions at one watermark
  s = client.Snapshot(req, [&](const v1::SnapshotChunk& c) {
    if (names_b.empty()) {
      names_b.assign(c.feature_names().begin(), c.feature_names().end());
      for (size_t i = 0; i < names_a.size(); ++i) {
        auto it = std::find(names_b.begin(), names_b.end(), names_a[i]);
        if (it == names_b.end()) {
          only_a.push_back(names_a[i]);
          continue;
        }
        FeatureDiff d;
        d.name = names_a[i];
        d.a = static_cast<int>(i);
        d.b = static_cast<int>(it - names_b.begin());
        shared.push_back(d);
      }
      for (const auto& n : names_b) {
        if (std::find(names_a.begin(), names_a.end(), n) == names_a.end()) {
          only_b.push_back(n);
        }
      }
    }
    for (const auto& row : c.rows()) {
      auto it = rows_a.find(row.entity());
      if (it == rows_a.end()) {
        ++only_in_b;
        continue;
      }
      ++entities;
      for (FeatureDiff& d : shared) {
        const v1::Value& x = it->second[d.a];
        const v1::Value& y = row.values(d.b);
        ++d.compared;
        if (x.SerializeAsString() == y.SerializeAsString()) continue;
        ++d.differing;
        double dx, dy;
        if (Numeric(x, &dx) && Numeric(y, &dy)) {
          const double abs = std::fabs(dx - dy);
          const double scale = std::max(std::fabs(dx), std::fabs(dy));
          d.max_abs = std::max(d.max_abs, abs);
          d.max_rel = std::max(d.max_rel, scale > 0 ? abs / scale : 0.0);
        }
        if (static_cast<int>(d.examples.size()) < args.examples) {
          d.examples.push_back(absl::StrCat(row.entity(), " (", ValueToJson(x),
                                            " -> ", ValueToJson(y), ")"));
        }
      }
      rows_a.erase(it);
    }
    return true;
  });
  if (!s.ok()) {
    return error(s);
  }
  only_in_a = static_cast<int64_t>(rows_a.size());

  std::ofstream file;
  if (!args.out.empty()) {
    file.open(args.out, std::ios::trunc);
    if (!file) {
      return error(
          absl::StrCat("cannot create ", args.out, ": ", strerror(errno)));
    }
  }
  std::ostream& out = args.out.empty() ? std::cout : file;
  bool different =
      !only_a.empty() || !only_b.empty() || only_in_a > 0 || only_in_b > 0;
  out << absl::StrFormat(
      "%s %s v%u vs v%u as of %s at watermark %llu: %lld entities\n",
      service ? "service" : "view", service ? args.service : args.view, va, vb,
      FormatMicros(*as_of), static_cast<unsigned long long>(watermark),
      static_cast<long long>(entities));
  out << absl::StrFormat("%-28s %10s %10s %12s %12s  %s\n", "feature",
                         "compared", "differing", "max abs", "max rel",
                         "examples");
  for (const FeatureDiff& d : shared) {
    different = different || d.differing > 0;
    std::string examples;
    for (const auto& e : d.examples) {
      absl::StrAppend(&examples, examples.empty() ? "" : "; ", e);
    }
    out << absl::StrFormat("%-28s %10d %10d %12g %12g  %s\n", d.name,
                           d.compared, d.differing, d.max_abs, d.max_rel,
                           examples);
  }
  for (const auto& n : only_a) out << "only in v" << va << ": " << n << "\n";
  for (const auto& n : only_b) out << "only in v" << vb << ": " << n << "\n";
  if (only_in_a + only_in_b > 0) {
    out << "entities in one version only: " << only_in_a + only_in_b << "\n";
  }
  out << (different ? "different\n" : "identical\n");
  out.flush();
  if (!out) {
    return error("cannot write the report");
  }
  return different ? 1 : 0;
}

// -------------------------------------------------------------- backfill

CLI::App* AddBackfillCommand(CLI::App* app, BackfillArgs* args) {
  auto* cmd =
      app->add_subcommand("backfill",
                          "one snapshot file per as-of time (local midnights), "
                          "restartable, all at one watermark");
  args->source.AddFlags(cmd);
  cmd->add_option("--from", args->from,
                  "first as-of: a local date YYYY-MM-DD (midnight in --tz) "
                  "or a time")
      ->required();
  cmd->add_option("--to", args->to, "last as-of (inclusive), same forms")
      ->required();
  cmd->add_option("--every", args->every,
                  "step: Nd/Nw in local calendar days, or Nh/Nm/Ns")
      ->capture_default_str();
  cmd->add_option("--tz", args->tz, "IANA time zone of the dates")
      ->capture_default_str();
  cmd->add_option("--watermark", args->watermark,
                  "0 = the latest when the backfill starts");
  cmd->add_option("--out", args->out, "output directory")->required();
  cmd->add_option("--format", args->format, "csv or jsonl")
      ->capture_default_str();
  cmd->add_flag("--separate-passes", args->separate_passes,
                "one Snapshot per as-of time instead of a shared pass "
                "(slower; for comparison)");
  return cmd;
}

namespace {

// A local civil time in `tz` as an instant: a skipped time (DST gap) maps
// to the instant the gap ends, a repeated one (DST overlap) to its first
// occurrence.
absl::Time LocalToUtc(const absl::CivilSecond& cs, const absl::TimeZone& tz) {
  const absl::TimeZone::TimeInfo info = tz.At(cs);
  return info.kind == absl::TimeZone::TimeInfo::SKIPPED ? info.trans : info.pre;
}

// The as-of times of a backfill, in microseconds.
absl::StatusOr<std::vector<int64_t>> AsOfTimes(const BackfillArgs& args,
                                               const absl::TimeZone& tz) {
  // --every: a positive count and a unit.
  constexpr int64_t kDay = 86400LL * 1000000;
  int64_t count = 0;
  const char unit = args.every.empty() ? '\0' : args.every.back();
  const int64_t unit_us = unit == 'w'   ? 7 * kDay
                          : unit == 'd' ? kDay
                          : unit == 'h' ? 3600LL * 1000000
                          : unit == 'm' ? 60LL * 1000000
                          : unit == 's' ? 1000000
                                        : 0;
  if (unit_us == 0 ||
      !absl::SimpleAtoi(
          absl::string_view(args.every).substr(0, args.every.size() - 1),
          &count) ||
      count <= 0 || count > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--every '", args.every, "': want Nd, Nw, Nh, Nm or Ns"));
  }
  const int64_t every_us = count * unit_us;
  const bool civil_days = unit == 'd' || unit == 'w';
  auto parse = [&](const std::string& text, const char* flag,
                   absl::CivilDay* day) -> absl::StatusOr<int64_t> {
    if (absl::ParseCivilTime(text, day)) {
      return absl::ToUnixMicros(LocalToUtc(absl::CivilSecond(*day), tz));
    }
    auto t = ParseTime(text);
    if (!t.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, ": '", text, "' is neither a date YYYY-MM-DD nor a time"));
    }
    *day = absl::CivilDay(absl::ToCivilSecond(absl::FromUnixMicros(*t), tz));
    return *t;
  };
  absl::CivilDay first_day, last_day;
  auto from = parse(args.from, "--from", &first_day);
  if (!from.ok()) return from.status();
  auto to = parse(args.to, "--to", &last_day);
  if (!to.ok()) return to.status();
  if (*to < *from) return absl::InvalidArgumentError("--to is before --from");
  constexpr size_t kMaxFiles = 100000;
  std::vector<int64_t> times;
  if (civil_days) {
    // Calendar days: the same local time of day, whatever DST does.
    const absl::CivilSecond start =
        absl::ToCivilSecond(absl::FromUnixMicros(*from), tz);
    const int64_t step = every_us / kDay;
    for (int64_t k = 0;; ++k) {
      const int64_t t =
          absl::ToUnixMicros(LocalToUtc(start + k * step * 86400, tz));
      if (t > *to) break;
      if (times.size() == kMaxFiles) {
        return absl::InvalidArgumentError("more than 100,000 as-of times");
      }
      times.push_back(t);
    }
  } else {
    for (int64_t t = *from; t <= *to; t += every_us) {
      if (times.size() == kMaxFiles) {
        return absl::InvalidArgumentError("more than 100,000 as-of times");
      }
      times.push_back(t);
    }
  }
  return times;
}

// 2026-11-01T04:00:00Z -> 20261101T040000Z (fractions kept as .ffffff).
std::string FileStamp(int64_t micros) {
  std::string s = FormatMicros(micros);
  std::string out;
  for (char c : s) {
    if (c != '-' && c != ':') out.push_back(c);
  }
  return out;
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return nlohmann::json();
  return nlohmann::json::parse(in, nullptr, false);
}

}  // namespace

int RunBackfill(const std::string& server, const BackfillArgs& args,
                const ClientOptions& options) {
  absl::Status checked = args.source.Check();
  if (!checked.ok()) return Fail(checked);
  if (args.format != "csv" && args.format != "jsonl") {
    return Fail("--format must be csv or jsonl");
  }
  absl::TimeZone tz;
  if (!absl::LoadTimeZone(args.tz, &tz)) {
    return Fail(absl::StrCat("--tz: unknown time zone '", args.tz,
                             "' (want an IANA name such as Asia/Seoul)"));
  }
  auto times = AsOfTimes(args, tz);
  if (!times.ok()) return Fail(times.status().message());
  Client client(server, options);
  auto resolved = args.source.ResolveVersion(client);
  if (!resolved.ok()) return Fail(resolved.status());
  const uint32_t version = *resolved;
  // Every snapshot of the set reads that version.
  FeatureSource source = args.source;
  (source.is_service() ? source.service_version : source.version) = version;

  // The manifest pins the set's parameters and its watermark, so a
  // resumed or repeated backfill writes the same bytes.
  std::error_code ec;
  std::filesystem::create_directories(args.out, ec);
  const std::string manifest_path = args.out + "/backfill.json";
  nlohmann::ordered_json manifest;
  manifest[source.kind()] = source.name();
  manifest["version"] = version;
  manifest["from"] = args.from;
  manifest["to"] = args.to;
  manifest["every"] = args.every;
  manifest["tz"] = args.tz;
  manifest["format"] = args.format;
  uint64_t watermark = args.watermark;
  const nlohmann::json old = ReadJson(manifest_path);
  if (old.is_object()) {
    for (const auto& [key, value] : manifest.items()) {
      if (!old.contains(key) || old[key].dump() != value.dump()) {
        return Fail(absl::StrCat(
            args.out, " holds a different backfill (", key, " was ",
            old.value(key, nlohmann::json()).dump(), "); use another --out"));
      }
    }
    const uint64_t pinned = old.value("watermark", uint64_t{0});
    if (watermark != 0 && watermark != pinned) {
      return Fail(absl::StrCat(args.out, " was backfilled at watermark ",
                               pinned, ", not ", watermark));
    }
    watermark = pinned;
  } else if (watermark == 0) {
    auto st = client.GetStatus();
    if (!st.ok()) return Fail(st.status());
    watermark = st->watermark();
  }
  manifest["watermark"] = watermark;
  manifest["as_of"] = nlohmann::json::array();
  for (int64_t t : *times) manifest["as_of"].push_back(FormatMicros(t));
  if (!old.is_object()) {
    absl::Status s =
        WriteFileAtomically(manifest_path, manifest.dump(2) + "\n");
    if (!s.ok()) return Fail(s.message());
  }

  // Complete files of an earlier run are kept; the rest are computed in
  // one shared pass per group of up to 64 as-of times (or one Snapshot
  // each with --separate-passes).
  Progress progress("backfill", static_cast<int64_t>(times->size()));
  int64_t rows = 0, written = 0, skipped = 0;
  std::vector<size_t> pending;
  std::vector<std::string> paths(times->size());
  for (size_t i = 0; i < times->size(); ++i) {
    const int64_t t = (*times)[i];
    paths[i] = absl::StrCat(args.out, "/", source.name(), "-v", version, "-",
                            FileStamp(t), ".", args.format);
    const nlohmann::json meta = ReadJson(paths[i] + ".meta.json");
    if (meta.is_object() && std::filesystem::exists(paths[i]) &&
        meta.value("as_of", "") == FormatMicros(t) &&
        meta.value("watermark", uint64_t{0}) == watermark &&
        meta.value("version", 0u) == version &&
        meta.value("format", "") == args.format) {
      ++skipped;
    } else {
      pending.push_back(i);
    }
  }
  progress.Update(skipped, 0);
  const ServerFacts facts = GetServerFacts(client, source, version);
  const size_t group = args.separate_passes ? 1 : 64;
  for (size_t g = 0; g < pending.size(); g += group) {
    const size_t n = std::min(group, pending.size() - g);
    v1::SnapshotRequest req;
    source.SetOn(&req);
    req.set_watermark(watermark);
    std::vector<SnapshotFileWriter> writers(n);
    absl::flat_hash_map<int64_t, SnapshotFileWriter*> by_time;
    for (size_t k = 0; k < n; ++k) {
      const size_t i = pending[g + k];
      absl::Status s = writers[k].Open(paths[i], args.format);
      if (!s.ok()) return Fail(s.message());
      by_time[(*times)[i]] = &writers[k];
      if (args.separate_passes) {
        *req.mutable_as_of() = MicrosToTimestamp((*times)[i]);
      } else {
        *req.add_as_of_times() = MicrosToTimestamp((*times)[i]);
      }
    }
    google::protobuf::RepeatedPtrField<std::string> names;
    absl::Status s = client.Snapshot(req, [&](const v1::SnapshotChunk& c) {
      if (names.empty()) names = c.feature_names();
      auto it = by_time.find(*TimestampToMicros(c.as_of()));
      return it != by_time.end() && it->second->Add(c, names);
    });
    for (size_t k = 0; k < n && s.ok(); ++k) {
      const size_t i = pending[g + k];
      auto file = writers[k].Finish(source, (*times)[i], "", facts);
      if (!file.ok()) {
        s = file.status();
        break;
      }
      rows += file->rows;
      ++written;
    }
    if (!s.ok()) {
      return Fail(absl::Status(
          s.code(), absl::StrCat(s.message(), " (", written,
                                 " files written; re-run the same command "
                                 "to resume)")));
    }
    progress.Update(skipped + written, rows);
  }
  progress.Done();
  std::printf(
      "backfill of %s %s v%u: %zu files (%lld written, %lld already "
      "complete), %lld rows, watermark %llu, in %s\n",
      source.kind(), source.name().c_str(), version, times->size(),
      static_cast<long long>(written), static_cast<long long>(skipped),
      static_cast<long long>(rows), static_cast<unsigned long long>(watermark),
      args.out.c_str());
  return 0;
}

}  // namespace rawfeat
