#include "client/cli/analyst.h"

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

// -------------------------------------------------------------- snapshot

CLI::App* AddSnapshotCommand(CLI::App* app, SnapshotArgs* args) {
  auto* cmd = app->add_subcommand(
      "snapshot", "features of every entity of a view as of one time");
  cmd->add_option("--view", args->view, "view name")->required();
  cmd->add_option("--version", args->version, "view version (0 = latest)");
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

ServerFacts GetServerFacts(Client& client, const std::string& view,
                           uint32_t version) {
  ServerFacts facts;
  auto st = client.GetStatus();
  if (st.ok()) facts.server_version = st->version();
  auto defs = client.ListDefinitions();
  if (!defs.ok()) return facts;
  auto info = FindViewInfo(*defs, view, version);
  if (!info.ok()) return facts;
  const v1::ViewInfo& v = **info;
  for (int i = 0;
       i < v.definition().features_size() && i < v.feature_types_size(); ++i) {
    facts.feature_types[v.definition().features(i).name()] =
        v.feature_types(i);
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
      for (const auto& v : row.values()) absl::StrAppend(&line, ",", CsvCell(v));
      out << line << "\n";
    } else {
      out << FeatureRowToJson(names_, row) << "\n";
    }
  }
  result_.rows += chunk.rows_size();
  return static_cast<bool>(out);
}

absl::StatusOr<SnapshotFile> SnapshotFileWriter::Finish(
    const std::string& view, int64_t as_of, const std::string& partition,
    const ServerFacts& facts) {
  absl::Status s = file_.Commit();
  if (!s.ok()) return s;
  nlohmann::ordered_json meta;
  meta["command"] = "snapshot";
  meta["view"] = view;
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
    Client& client, const v1::SnapshotRequest& request,
    const std::string& path, const std::string& format, Progress* progress) {
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
  return writer.Finish(
      request.view(), *TimestampToMicros(request.as_of()),
      request.has_partition()
          ? absl::StrCat(request.partition().index(), "/",
                         request.partition().count())
          : "",
      GetServerFacts(client, request.view(),
                     writer.version() != 0 ? writer.version()
                                           : request.version()));
}

int RunSnapshot(Client& client, const SnapshotArgs& args) {
  auto format = DataFormat(args.format, args.out, "csv");
  if (!format.ok()) return Fail(format.status().message());
  auto as_of = ParseTimeFlag("--as-of", args.as_of);
  if (!as_of.ok()) return Fail(as_of.status().message());
  v1::SnapshotRequest request;
  request.set_view(args.view);
  request.set_version(args.version);
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
               "snapshot of view %s v%u as of %s: %lld entities, watermark "
               "%llu\n",
               args.view.c_str(), file->version, FormatMicros(*as_of).c_str(),
               static_cast<long long>(file->rows),
               static_cast<unsigned long long>(file->watermark));
  return 0;
}

// ------------------------------------------------------------------ join

CLI::App* AddJoinCommand(CLI::App* app, JoinArgs* args) {
  auto* cmd = app->add_subcommand(
      "join", "point-in-time correct features for every row of a label file");
  cmd->add_option("--view", args->view, "view name")->required();
  cmd->add_option("--version", args->version, "view version (0 = latest)");
  cmd->add_option("--watermark", args->watermark,
                  "0 = latest; pass a file's watermark to rebuild it");
  cmd->add_option("--labels", args->labels, "label rows, CSV with a header")
      ->required();
  cmd->add_option("--out", args->out, "output file (- = stdout)")->required();
  cmd->add_option("--entity-column", args->entity_column,
                  "label column with the entity (default: the stream's)");
  cmd->add_option("--time-column", args->time_column,
                  "label column with the time (default: the stream's)");
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

int RunJoin(Client& client, const JoinArgs& args) {
  auto format = DataFormat(args.format, args.out, "csv");
  if (!format.ok()) return Fail(format.status().message());
  auto unit = ParseTimeUnit(args.time_unit);
  if (!unit.ok()) return Fail(unit.status());
  if (!args.reject_file.empty() && !args.skip_invalid) {
    return Fail("--reject-file needs --skip-invalid");
  }
  auto defs = FindViewDefinition(client, args.view, args.version);
  if (!defs.ok()) return Fail(defs.status());
  const v1::StreamDef& stream = defs->second;
  const std::string entity_column = args.entity_column.empty()
                                        ? stream.entity_field()
                                        : args.entity_column;
  const std::string time_column =
      args.time_column.empty() ? stream.time_field() : args.time_column;

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
    return Fail(csv.error().ok() ? absl::StrCat(args.labels, ": empty file")
                                 : absl::StrCat(args.labels, ": ",
                                                csv.error().message()));
  }
  int entity_at = -1, time_at = -1;
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == entity_column) entity_at = static_cast<int>(i);
    if (header[i] == time_column) time_at = static_cast<int>(i);
  }
  if (entity_at < 0) {
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
      } else if (cells[entity_at].empty()) {
        problem = absl::StrCat("column '", entity_column, "' is empty");
      } else if (cells[entity_at].find('\0') != std::string::npos) {
        problem = absl::StrCat("column '", entity_column, "' contains NUL");
      } else if (t = ParseTime(cells[time_at], *unit); !t.ok()) {
        problem = absl::StrCat("column '", time_column,
                               "': ", t.status().message());
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
      row->set_entity(cells[entity_at]);
      *row->mutable_time() = MicrosToTimestamp(*t);
      for (size_t i = 0; i < cells.size(); ++i) {
        if (static_cast<int>(i) != entity_at) {
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
  first.set_view(args.view);
  first.set_version(args.version);
  first.set_watermark(args.watermark);
  s = client.JoinFeatures(
      first, next, [&](const v1::JoinFeaturesResponse& r) {
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
            label_cells[i] = static_cast<int>(i) == entity_at
                                 ? row.entity()
                                 : (k < row.passthrough_size()
                                        ? row.passthrough(k++)
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
  meta["view"] = args.view;
  meta["version"] = version;
  meta["watermark"] = watermark;
  meta["labels"] = args.labels;
  meta["entity_column"] = entity_column;
  meta["time_column"] = time_column;
  meta["format"] = *format;
  meta["rows"] = rows;
  meta["rejected"] = rejected;
  meta["features"] = std::vector<std::string>(names.begin(), names.end());
  const ServerFacts facts = GetServerFacts(client, args.view, version);
  meta["columns"] = ColumnsMeta(header, names, facts);
  meta["server_version"] = facts.server_version;
  s = WriteMeta(args.out, meta);
  if (!s.ok()) return Fail(s.message());
  std::fprintf(stderr,
               "joined %lld label rows (%lld rejected) with view %s v%u, "
               "watermark %llu\n",
               static_cast<long long>(rows), static_cast<long long>(rejected),
               args.view.c_str(), version,
               static_cast<unsigned long long>(watermark));
  return 0;
}

}  // namespace rawfeat
