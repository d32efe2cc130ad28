#include "client/cli/analyst.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli/cli_util.h"
#include "client/output_file.h"
#include "client/progress.h"
#include "client/records.h"
#include "nlohmann/json.hpp"
#include "server/common/time_util.h"

namespace rawfeat {
namespace {

std::string CsvLine(const std::vector<std::string>& cells) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    if (i > 0) line.push_back(',');
    line += CsvEscape(cells[i]);
  }
  return line;
}

// The sidecar FILE.meta.json: everything needed to rebuild FILE.
absl::Status WriteMeta(const std::string& out, nlohmann::ordered_json meta) {
  if (out == "-") return absl::OkStatus();
  return WriteFileAtomically(out + ".meta.json", meta.dump(2) + "\n");
}

}  // namespace

void FeatureSource::AddFlags(CLI::App* cmd) {
  cmd->add_option("--view", view, "view name");
  cmd->add_option("--version", version, "view version (0 = latest)");
  cmd->add_option("--service", service,
                  "feature service name (instead of --view)");
  cmd->add_option("--service-version", service_version,
                  "service version (0 = latest)");
}

absl::Status FeatureSource::Check() const {
  if (view.empty() == service.empty()) {
    return LocalError("give --view or --service (one of them)");
  }
  if (is_service() && version != 0) {
    return LocalError(
        "--version is a view's; with --service use --service-version");
  }
  if (!is_service() && service_version != 0) {
    return LocalError("--service-version needs --service");
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> FeatureSource::ResolveVersion(Client& client) const {
  auto defs = client.ListDefinitions();
  if (!defs.ok()) return defs.status();
  if (is_service()) {
    auto info = FindServiceInfo(*defs, service, service_version);
    if (!info.ok()) return info.status();
    return (*info)->definition().version();
  }
  auto info = FindViewInfo(*defs, view, version);
  if (!info.ok()) return info.status();
  return (*info)->definition().version();
}

// -------------------------------------------------------------- snapshot

CLI::App* AddSnapshotCommand(CLI::App* app, SnapshotArgs* args) {
  auto* cmd = app->add_subcommand(
      "snapshot",
      "features of every entity of a view (or one-key service) as of one time");
  args->source.AddFlags(cmd);
  cmd->add_option("--as-of", args->as_of,
                  "RFC 3339, or epoch with a unit suffix (s, ms, us)")
      ->required();
  cmd->add_option("--watermark", args->watermark,
                  "0 = latest; pass a file's watermark to rebuild it");
  cmd->add_option("--partition", args->partition,
                  "K/N: only entity-hash partition K of N");
  cmd->add_option("--out", args->out, "output file (- = stdout)")->required();
  cmd->add_option("--format", args->format, "csv or jsonl (default: by name)");
  return cmd;
}

ServerFacts GetServerFacts(Client& client, const FeatureSource& source,
                           uint32_t version) {
  ServerFacts facts;
  auto st = client.GetStatus();
  if (st.ok()) facts.server_version = st->version();
  auto defs = client.ListDefinitions();
  if (!defs.ok()) return facts;
  // The types of a view's features, `take`n (all when empty) under
  // `prefix`.
  auto add_view =
      [&](const std::string& view, uint32_t view_version,
          const std::string& prefix,
          const google::protobuf::RepeatedPtrField<std::string>& take) {
        auto info = FindViewInfo(*defs, view, view_version);
        if (!info.ok()) return;
        const v1::ViewInfo& v = **info;
        for (int i = 0;
             i < v.definition().features_size() && i < v.feature_types_size();
             ++i) {
          const std::string& name = v.definition().features(i).name();
          if (!take.empty() &&
              std::find(take.begin(), take.end(), name) == take.end()) {
            continue;
          }
          facts.feature_types[absl::StrCat(prefix, name)] = v.feature_types(i);
        }
      };
  if (!source.is_service()) {
    add_view(source.view, version, "", {});
    return facts;
  }
  auto service = FindServiceInfo(*defs, source.service, version);
  if (!service.ok()) return facts;
  for (const v1::ServicePart& part : (*service)->definition().parts()) {
    add_view(part.view(), part.view_version(), part.prefix(), part.features());
  }
  return facts;
}

namespace {

// The pandas dtype that reads a column of `type` from our CSV exactly
// (lists are JSON arrays: json.loads each cell).
const char* PandasDtype(const std::string& type) {
  if (type == "INT64") return "Int64";
  if (type == "DOUBLE") return "float64";
  if (type == "BOOL") return "boolean";
  if (type == "STRING") return "string";
  return "object";
}

// The "columns" of a .meta.json: every column of the file in order, with
// its type and pandas dtype. `text_columns` come first (entity, labels).
nlohmann::ordered_json ColumnsMeta(
    const std::vector<std::string>& text_columns,
    const google::protobuf::RepeatedPtrField<std::string>& features,
    const ServerFacts& facts) {
  nlohmann::ordered_json columns = nlohmann::ordered_json::array();
  auto add = [&](const std::string& name, const std::string& type) {
    nlohmann::ordered_json c;
    c["name"] = name;
    c["type"] = type;
    c["pandas_dtype"] = PandasDtype(type);
    columns.push_back(std::move(c));
  };
  for (const std::string& c : text_columns) add(c, "STRING");
  for (const std::string& f : features) {
    auto it = facts.feature_types.find(f);
    add(f, it == facts.feature_types.end() ? "" : it->second);
  }
  return columns;
}

}  // namespace

absl::Status SnapshotFileWriter::Open(const std::string& path,
                                      const std::string& format) {
  path_ = path;
  format_ = format;
  return file_.Open(path);
}

bool SnapshotFileWriter::Add(
    const v1::SnapshotChunk& chunk,
    const google::protobuf::RepeatedPtrField<std::string>& names) {
  std::ostream& out = file_.out();
  if (names_.empty()) {
    names_ = names;
    if (format_ == "csv") {
      cells_.assign({"entity"});
      cells_.insert(cells_.end(), names.begin(), names.end());
      out << CsvLine(cells_) << "\n";
    }
  }
  result_.watermark = chunk.watermark();
  result_.version = chunk.version();
  for (const auto& row : chunk.rows()) {
    if (format_ == "csv") {
      std::string line = CsvEscape(row.entity());
      for (const auto& v : row.values())
        absl::StrAppend(&line, ",", CsvCell(v));
      out << line << "\n";
    } else {
      out << FeatureRowToJson(names_, row) << "\n";
    }
  }
  result_.rows += chunk.rows_size();
  return static_cast<bool>(out);
}

absl::StatusOr<SnapshotFile> SnapshotFileWriter::Finish(
    const FeatureSource& source, int64_t as_of, const std::string& partition,
    const ServerFacts& facts) {
  absl::Status s = file_.Commit();
  if (!s.ok()) return s;
  nlohmann::ordered_json meta;
  meta["command"] = "snapshot";
  meta[source.kind()] = source.name();
  meta["version"] = result_.version;
  meta["as_of"] = FormatMicros(as_of);
  meta["watermark"] = result_.watermark;
  if (!partition.empty()) meta["partition"] = partition;
  meta["format"] = format_;
  meta["rows"] = result_.rows;
  meta["features"] = std::vector<std::string>(names_.begin(), names_.end());
  meta["columns"] = ColumnsMeta({"entity"}, names_, facts);
  meta["server_version"] = facts.server_version;
  s = WriteMeta(path_, meta);
  if (!s.ok()) return s;
  return result_;
}

absl::StatusOr<SnapshotFile> WriteSnapshotFile(
    Client& client, const v1::SnapshotRequest& request, const std::string& path,
    const std::string& format, Progress* progress) {
  SnapshotFileWriter writer;
  absl::Status s = writer.Open(path, format);
  if (!s.ok()) return s;
  google::protobuf::RepeatedPtrField<std::string> names;
  s = client.Snapshot(request, [&](const v1::SnapshotChunk& chunk) {
    if (names.empty()) names = chunk.feature_names();
    const bool ok = writer.Add(chunk, names);
    if (progress != nullptr) progress->Update(0, writer.rows());
    return ok;
  });
  if (!s.ok()) return s;
  FeatureSource source;
  source.view = request.view();
  source.service = request.service();
  return writer.Finish(
      source, *TimestampToMicros(request.as_of()),
      request.has_partition() ? absl::StrCat(request.partition().index(), "/",
                                             request.partition().count())
                              : "",
      GetServerFacts(client, source,
                     writer.version() != 0 ? writer.version()
                     : source.is_service() ? request.service_version()
                                           : request.version()));
}

int RunSnapshot(Client& client, const SnapshotArgs& args) {
  absl::Status checked = args.source.Check();
  if (!checked.ok()) return Fail(checked);
  auto format = DataFormat(args.format, args.out, "csv");
  if (!format.ok()) return Fail(format.status().message());
  auto as_of = ParseTimeFlag("--as-of", args.as_of);
  if (!as_of.ok()) return Fail(as_of.status().message());
  v1::SnapshotRequest request;
  args.source.SetOn(&request);
  *request.mutable_as_of() = MicrosToTimestamp(*as_of);
  request.set_watermark(args.watermark);
  if (!args.partition.empty()) {
    auto partition = ParsePartitionFlag(args.partition);
    if (!partition.ok()) return Fail(partition.status().message());
    *request.mutable_partition() = *partition;
  }
  Progress progress("snapshot", 0);
  auto file = WriteSnapshotFile(client, request, args.out, *format, &progress);
  if (!file.ok()) return Fail(file.status());
  progress.Done();
  std::fprintf(stderr,
               "snapshot of %s %s v%u as of %s: %lld entities, watermark "
               "%llu\n",
               args.source.kind(), args.source.name().c_str(), file->version,
               FormatMicros(*as_of).c_str(), static_cast<long long>(file->rows),
               static_cast<unsigned long long>(file->watermark));
  return 0;
}

// ------------------------------------------------------------------ join

CLI::App* AddJoinCommand(CLI::App* app, JoinArgs* args) {
  auto* cmd = app->add_subcommand(
      "join", "point-in-time correct features for every row of a label file");
  args->source.AddFlags(cmd);
  cmd->add_option("--watermark", args->watermark,
                  "0 = latest; pass a file's watermark to rebuild it");
  cmd->add_option("--labels", args->labels, "label rows, CSV with a header")
      ->required();
  cmd->add_option("--out", args->out, "output file (- = stdout)")->required();
  cmd->add_option("--entity-column", args->entity_column,
                  "with --view: label column with the entity (default: the "
                  "stream's entity field)");
  cmd->add_option("--time-column", args->time_column,
                  "label column with the time (default: the streams' time "
                  "field)");
  cmd->add_option("--time-unit", args->time_unit,
                  "unit of bare integer times: s, ms or us")
      ->capture_default_str();
  cmd->add_flag("--skip-invalid", args->skip_invalid,
                "skip invalid label rows (listed in --reject-file)");
  cmd->add_option("--reject-file", args->reject_file,
                  "with --skip-invalid: where skipped rows are listed");
  cmd->add_option("--format", args->format, "csv or jsonl (default: by name)");
  return cmd;
}

namespace {

// The label columns a join of `source` reads by default.
struct LabelColumns {
  std::string entity;  // a view: its stream's entity field
  // The streams' time field; empty when a service's streams differ (then
  // `time_problem` lists them).
  std::string time;
  std::string time_problem;
  // A service: each distinct key column and which part needs it.
  std::vector<std::pair<std::string, std::string>> keys;
};

absl::StatusOr<LabelColumns> LabelColumnsOf(Client& client,
                                            const FeatureSource& source) {
  auto defs = client.ListDefinitions();
  if (!defs.ok()) return defs.status();
  // The stream a view (name, version) reads.
  auto stream_of =
      [&](const std::string& view,
          uint32_t version) -> absl::StatusOr<const v1::StreamDef*> {
    auto info = FindViewInfo(*defs, view, version);
    if (!info.ok()) return info.status();
    for (const auto& s : defs->streams()) {
      if (s.definition().name() == (*info)->definition().stream()) {
        return &s.definition();
      }
    }
    return absl::NotFoundError(absl::StrCat(
        "stream '", (*info)->definition().stream(), "' is not defined"));
  };
  LabelColumns columns;
  if (!source.is_service()) {
    auto stream = stream_of(source.view, source.version);
    if (!stream.ok()) return stream.status();
    columns.entity = (*stream)->entity_field();
    columns.time = (*stream)->time_field();
    return columns;
  }
  auto service = FindServiceInfo(*defs, source.service, source.service_version);
  if (!service.ok()) return service.status();
  const v1::FeatureServiceDef& def = (*service)->definition();
  std::vector<std::string> times;  // "stream.field", distinct
  for (int i = 0; i < def.parts_size(); ++i) {
    const v1::ServicePart& part = def.parts(i);
    auto stream = stream_of(part.view(), part.view_version());
    if (!stream.ok()) return stream.status();
    if (i == 0) columns.time = (*stream)->time_field();
    const std::string time =
        absl::StrCat((*stream)->name(), ": ", (*stream)->time_field());
    if (std::find(times.begin(), times.end(), time) == times.end()) {
      times.push_back(time);
    }
    if ((*stream)->time_field() != columns.time) columns.time.clear();
    const bool seen =
        std::any_of(columns.keys.begin(), columns.keys.end(),
                    [&](const auto& k) { return k.first == part.key(); });
    if (!seen) {
      columns.keys.emplace_back(
          part.key(), absl::StrCat("part ", i + 1, " of service '", def.name(),
                                   "' looks up view '", part.view(), "'"));
    }
  }
  if (columns.time.empty()) columns.time_problem = absl::StrJoin(times, ", ");
  return columns;
}

}  // namespace

int RunJoin(Client& client, const JoinArgs& args) {
  auto format = DataFormat(args.format, args.out, "csv");
  if (!format.ok()) return Fail(format.status().message());
  auto unit = ParseTimeUnit(args.time_unit);
  if (!unit.ok()) return Fail(unit.status());
  if (!args.reject_file.empty() && !args.skip_invalid) {
    return Fail("--reject-file needs --skip-invalid");
  }
  absl::Status checked = args.source.Check();
  if (!checked.ok()) return Fail(checked);
  const bool service = args.source.is_service();
  if (service && !args.entity_column.empty()) {
    return Fail(LocalError(
        "--entity-column is a view's; a service reads each part's key column"));
  }
  auto columns = LabelColumnsOf(client, args.source);
  if (!columns.ok()) return Fail(columns.status());
  const std::string entity_column =
      args.entity_column.empty() ? columns->entity : args.entity_column;
  std::string time_column = args.time_column;
  if (time_column.empty()) {
    if (columns->time.empty()) {
      return Fail(LocalError(
          absl::StrCat("the parts of service '", args.source.service,
                       "' read streams whose time fields differ (",
                       columns->time_problem, "): set --time-column")));
    }
    time_column = columns->time;
  }

  std::ifstream in(args.labels, std::ios::binary);
  if (!in) {
    return Fail(absl::StrCat(args.labels, ": cannot open: ", strerror(errno)));
  }
  in.seekg(0, std::ios::end);
  const int64_t total_bytes = static_cast<int64_t>(in.tellg());
  in.seekg(0);
  CsvReader csv(&in);
  std::vector<std::string> header;
  if (!csv.Next(&header)) {
    return Fail(csv.error().ok()
                    ? absl::StrCat(args.labels, ": empty file")
                    : absl::StrCat(args.labels, ": ", csv.error().message()));
  }
  int entity_at = -1, time_at = -1;
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == entity_column) entity_at = static_cast<int>(i);
    if (header[i] == time_column) time_at = static_cast<int>(i);
  }
  // A service's key columns: (index in the file, name).
  std::vector<std::pair<int, std::string>> key_at;
  for (const auto& [key, needed_by] : columns->keys) {
    auto it = std::find(header.begin(), header.end(), key);
    if (it == header.end()) {
      return Fail(absl::StrCat(args.labels, ": no column '", key, "' (",
                               needed_by, " by it)"));
    }
    key_at.emplace_back(static_cast<int>(it - header.begin()), key);
  }
  if (!service && entity_at < 0) {
    return Fail(absl::StrCat(args.labels, ": no column '", entity_column,
                             "' (set --entity-column)"));
  }
  if (time_at < 0) {
    return Fail(absl::StrCat(args.labels, ": no column '", time_column,
                             "' (set --time-column)"));
  }
  std::ofstream rejects;
  if (!args.reject_file.empty()) {
    rejects.open(args.reject_file, std::ios::trunc);
    if (!rejects) {
      return Fail(absl::StrCat("cannot create ", args.reject_file, ": ",
                               strerror(errno)));
    }
  }

  OutputFile file;
  absl::Status s = file.Open(args.out);
  if (!s.ok()) return Fail(s.message());
  std::ostream& out = file.out();

  // Writer thread: label file -> request messages. Every row is checked
  // here so a bad one is reported with its line number.
  int64_t sent = 0, rejected = 0;
  std::atomic<int64_t> read_bytes{0};
  bool eof = false;
  std::vector<std::string> cells;
  auto next = [&](v1::JoinFeaturesRequest* m) -> absl::StatusOr<bool> {
    while (!eof && m->rows_size() < 1000) {
      if (!csv.Next(&cells)) {
        eof = true;
        if (!csv.error().ok()) {
          const std::string msg =
              absl::StrCat(args.labels, ": ", csv.error().message());
          if (!args.skip_invalid) return absl::InvalidArgumentError(msg);
          ++rejected;
          if (rejects.is_open()) rejects << csv.error().message() << "\n";
        }
        break;
      }
      const int64_t line = csv.record_line();
      if (cells.size() == 1 && cells[0].empty()) continue;  // blank line
      std::string problem;
      absl::StatusOr<int64_t> t;
      if (cells.size() != header.size()) {
        problem = absl::StrCat(cells.size(), " cells, the header has ",
                               header.size());
      } else if (service) {
        for (const auto& [at, key] : key_at) {
          if (cells[at].find('\0') != std::string::npos) {
            problem = absl::StrCat("column '", key, "' contains NUL");
          }
        }
      } else if (cells[entity_at].empty()) {
        problem = absl::StrCat("column '", entity_column, "' is empty");
      } else if (cells[entity_at].find('\0') != std::string::npos) {
        problem = absl::StrCat("column '", entity_column, "' contains NUL");
      }
      if (problem.empty()) {
        t = ParseTime(cells[time_at], *unit);
        if (!t.ok()) {
          problem = absl::StrCat("column '", time_column,
                                 "': ", t.status().message());
        }
      }
      if (!problem.empty()) {
        if (!args.skip_invalid) {
          return absl::InvalidArgumentError(
              absl::StrCat(args.labels, " line ", line, ": ", problem));
        }
        ++rejected;
        if (rejects.is_open()) {
          rejects << "line " << line << ": " << problem << "\n";
        }
        continue;
      }
      v1::LabelRow* row = m->add_rows();
      *row->mutable_time() = MicrosToTimestamp(*t);
      if (service) {
        // Keys by position (an empty cell: that part's features are null);
        // every cell comes back as passthrough.
        for (const auto& [at, key] : key_at) row->add_key_values(cells[at]);
      } else {
        row->set_entity(std::move(cells[entity_at]));
      }
      for (size_t i = 0; i < cells.size(); ++i) {
        if (static_cast<int>(i) != entity_at || service) {
          row->add_passthrough(std::move(cells[i]));
        }
      }
      ++sent;
    }
    const int64_t pos = in.tellg();
    read_bytes.store(pos < 0 ? total_bytes : pos, std::memory_order_relaxed);
    return m->rows_size() > 0;
  };

  // This thread: responses (in input order) -> output file.
  Progress progress("join", total_bytes);
  int64_t rows = 0;
  uint64_t watermark = 0;
  uint32_t version = 0;
  google::protobuf::RepeatedPtrField<std::string> names;
  std::vector<std::string> out_cells;
  std::vector<std::string> label_cells(header.size());
  v1::JoinFeaturesRequest first;
  args.source.SetOn(&first);
  first.set_watermark(args.watermark);
  for (const auto& [at, key] : key_at) first.add_key_columns(key);
  s = client.JoinFeatures(first, next, [&](const v1::JoinFeaturesResponse& r) {
    if (names.empty() && r.feature_names_size() > 0) {
      names = r.feature_names();
      if (*format == "csv") {
        out_cells = header;
        out_cells.insert(out_cells.end(), names.begin(), names.end());
        out << CsvLine(out_cells) << "\n";
      }
    }
    watermark = r.watermark();
    version = r.version();
    for (const auto& row : r.rows()) {
      int k = 0;
      for (size_t i = 0; i < header.size(); ++i) {
        label_cells[i] =
            !service && static_cast<int>(i) == entity_at
                ? row.entity()
                : (k < row.passthrough_size() ? row.passthrough(k++)
                                              : std::string());
      }
      if (*format == "csv") {
        std::string line = CsvLine(label_cells);
        for (const auto& v : row.values()) {
          absl::StrAppend(&line, ",", CsvCell(v));
        }
        out << line << "\n";
      } else {
        out << LabeledRowToJson(header, label_cells, names, row.values())
            << "\n";
      }
    }
    rows += r.rows_size();
    progress.Update(read_bytes.load(std::memory_order_relaxed), rows);
    return static_cast<bool>(out);
  });
  if (!s.ok()) return Fail(s);
  progress.Done();
  if (rows != sent) {
    return Fail(absl::StrCat("sent ", sent, " label rows but received ", rows));
  }
  s = file.Commit();
  if (!s.ok()) return Fail(s.message());
  nlohmann::ordered_json meta;
  meta["command"] = "join";
  meta[args.source.kind()] = args.source.name();
  meta["version"] = version;
  meta["watermark"] = watermark;
  meta["labels"] = args.labels;
  if (service) {
    std::vector<std::string> keys;
    for (const auto& [at, key] : key_at) keys.push_back(key);
    meta["key_columns"] = keys;
  } else {
    meta["entity_column"] = entity_column;
  }
  meta["time_column"] = time_column;
  meta["format"] = *format;
  meta["rows"] = rows;
  meta["rejected"] = rejected;
  meta["features"] = std::vector<std::string>(names.begin(), names.end());
  const ServerFacts facts = GetServerFacts(client, args.source, version);
  meta["columns"] = ColumnsMeta(header, names, facts);
  meta["server_version"] = facts.server_version;
  s = WriteMeta(args.out, meta);
  if (!s.ok()) return Fail(s.message());
  std::fprintf(stderr,
               "joined %lld label rows (%lld rejected) with %s %s v%u, "
               "watermark %llu\n",
               static_cast<long long>(rows), static_cast<long long>(rejected),
               args.source.kind(), args.source.name().c_str(), version,
               static_cast<unsigned long long>(watermark));
  return 0;
}

}  // namespace rawfeat
