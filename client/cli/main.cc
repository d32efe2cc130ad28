// rawfeat: the command-line client of rawfeatd.
//
//   rawfeat apply schemas/ [--dry-run]
//   rawfeat ingest --stream orders orders.csv [--batch-size N] [--skip-invalid
//                  --reject-file F] [--time-unit s|ms|us]
//   rawfeat replay --stream orders [--from T] [--to T] [--after-seq N]
//                  [--watermark N] [--entity E] --out events.jsonl
//   rawfeat get --view user_orders --entity u1,u2 [--as-of T] [--watermark N]
//               [--format table|json|csv]
//   rawfeat snapshot --view V --as-of T --out snap.csv   (see analyst.h)
//   rawfeat join --view V --labels labels.csv --out train.csv
//   rawfeat copy --from HOST:PORT --to HOST:PORT     (see replay_jobs.h)
//   rawfeat diff --view V --versions 1,2 --as-of T
//   rawfeat backfill --view V --from 2026-11-01 --to 2026-11-30 --tz Asia/Seoul
//                    --out DIR
//   rawfeat describe VIEW
//   rawfeat status
//
// Every command takes the global flags (--server HOST:PORT, --token-file,
// --tls*) before or after it, and exits non-zero with a one-line reason on
// failure.

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/cli/analyst.h"
#include "client/cli/cli_util.h"
#include "client/cli/replay_jobs.h"
#include "client/client.h"
#include "client/output_file.h"
#include "client/progress.h"
#include "client/records.h"
#include "server/common/definitions_text.h"
#include "server/common/time_util.h"
#include "server/common/wire.h"

namespace rawfeat {
namespace {

// ----------------------------------------------------------------- input

// Skips a UTF-8 byte order mark (spreadsheet exports start with one).
void SkipUtf8Bom(std::istream* in) {
  char bom[3];
  if (in->read(bom, 3) && bom[0] == '\xEF' && bom[1] == '\xBB' &&
      bom[2] == '\xBF') {
    return;
  }
  in->clear();
  in->seekg(0);
}

// ----------------------------------------------------------------- apply

struct ApplyArgs {
  std::string path;
  bool dry_run = false;
};

int RunApply(Client& client, const ApplyArgs& args) {
  auto files = ListDefinitionFiles(args.path);
  if (!files.ok()) return Fail(files.status());
  // One request for the whole folder: it is applied all or nothing, and a
  // view may use a stream defined in another file.
  v1::ApplyDefinitionsRequest request;
  for (const auto& file : *files) {
    auto defs = ReadDefinitionsFile(file);
    if (!defs.ok()) return Fail(defs.status());
    request.mutable_definitions()->MergeFrom(*defs);
  }
  request.set_dry_run(args.dry_run);
  request.set_source(args.path);
  auto response = client.ApplyDefinitions(request);
  if (!response.ok()) return Fail(response.status());
  const char* verb = args.dry_run ? "would " : "";
  for (const auto& c : response->changes()) {
    std::printf("%s%s\n", verb, c.c_str());
  }
  if (response->changes().empty()) std::printf("no changes\n");
  for (const auto& p : response->problems()) {
    std::printf("problem: %s\n", p.c_str());
  }
  if (!response->problems().empty()) {
    return Fail(absl::StrCat(response->problems_size(),
                             " problem(s); nothing would be applied"));
  }
  return 0;
}

// ---------------------------------------------------------------- ingest

struct IngestArgs {
  std::string stream;
  std::string file;
  std::string format;  // csv | jsonl; default from the extension
  int batch_size = 1000;
  bool skip_invalid = false;
  std::string reject_file;
  std::string time_unit = "none";
  int retries = 8;
  int in_flight = 1;
};

int RunIngest(Client& client, const IngestArgs& args) {
  auto unit = ParseTimeUnit(args.time_unit);
  if (!unit.ok()) return Fail(unit.status());
  if (args.batch_size < 1) return Fail("--batch-size must be >= 1");
  if (args.in_flight < 1 || args.in_flight > 64) {
    return Fail("--in-flight must be between 1 and 64");
  }
  if (!args.reject_file.empty() && !args.skip_invalid) {
    return Fail("--reject-file needs --skip-invalid");
  }
  auto format = DataFormat(args.format, args.file, "");
  if (!format.ok()) return Fail(format.status().message());
  std::ifstream in(args.file, std::ios::binary);
  if (!in) {
    return Fail(absl::StrCat(args.file, ": cannot open: ", strerror(errno)));
  }
  in.seekg(0, std::ios::end);
  const int64_t total_bytes = static_cast<int64_t>(in.tellg());
  in.seekg(0);
  SkipUtf8Bom(&in);

  std::mt19937_64 rng(std::random_device{}());
  // The lookup is retried like the batches: a server that is restarting
  // is not a failed ingest.
  auto stream = WithRetries(args.retries, rng,
                            [&] { return client.FindStream(args.stream); });
  if (!stream.ok()) return Fail(stream.status());
  RecordMapper mapper(*stream, *unit);

  std::ofstream rejects;
  if (!args.reject_file.empty()) {
    rejects.open(args.reject_file, std::ios::trunc);
    if (!rejects) {
      return Fail(
          absl::StrCat(args.reject_file, ": cannot create: ", strerror(errno)));
    }
  }
  // Rejects come from this thread (rows that do not parse) and from the
  // sender (rows the server refused).
  std::mutex reject_mu;
  int64_t rejected = 0;
  // `text` starts with "line N: ". Without a reject file, the first few
  // are shown on stderr.
  constexpr int64_t kShownRejects = 5;
  auto reject = [&](absl::string_view text) {
    std::lock_guard<std::mutex> l(reject_mu);
    ++rejected;
    if (rejects.is_open()) {
      rejects << text << "\n";
    } else if (rejected <= kShownRejects) {
      std::fprintf(stderr, "rejected %s\n", std::string(text).c_str());
    }
  };

  CsvReader csv(&in);
  std::vector<absl::string_view> cells;  // a row, into csv's buffer
  if (*format == "csv") {
    std::vector<std::string> header;
    if (!csv.Next(&header)) {
      return Fail(csv.error().ok() ? absl::StrCat(args.file, ": empty file")
                                   : std::string(csv.error().message()));
    }
    absl::Status s = mapper.SetHeader(header);
    if (!s.ok()) return Fail(s);
  }

  Progress progress("ingest", total_bytes);
  // A batch is an IngestRequest in wire format: its stream and on_invalid
  // fields, then one `events` entry per row, appended as rows are read.
  struct Batch {
    std::string request;
    std::vector<int64_t> lines;  // line of each row
  };
  auto new_batch = [&]() {
    Batch b;
    b.request.reserve(size_t{256} * args.batch_size);
    wire::PutBytesField(&b.request, v1::IngestRequest::kStreamFieldNumber,
                        args.stream);
    wire::PutVarintField(
        &b.request, v1::IngestRequest::kOnInvalidFieldNumber,
        args.skip_invalid ? v1::SKIP_ROW : v1::REJECT_BATCH);
    return b;
  };
  Batch batch = new_batch();
  // Counts: rows by this thread, the rest by the senders under count_mu
  // (read once they are joined).
  int64_t rows = 0, accepted = 0, duplicates = 0, expired = 0;
  uint64_t watermark = 0;
  std::mutex count_mu;

  // Adds a call's answer to the counts; the call's batch i is sent[i]
  // (rejected rows name their batch and row).
  auto count = [&](const v1::IngestResponse& r, const std::deque<Batch>& sent) {
    {
      std::lock_guard<std::mutex> l(count_mu);
      accepted += r.accepted();
      duplicates += r.duplicates();
      expired += r.expired();
      watermark = std::max<uint64_t>(watermark, r.watermark());
    }
    for (const auto& e : r.rejected()) {
      const size_t b = static_cast<size_t>(e.batch());
      const size_t row = static_cast<size_t>(e.row());
      const std::string where =
          b < sent.size() && row < sent[b].lines.size()
              ? absl::StrCat("line ", sent[b].lines[row])
              : absl::StrCat("batch ", e.batch(), " row ", e.row());
      reject(absl::StrCat(where, ": ", e.field().empty() ? "" : "field ",
                          e.field(), e.field().empty() ? "" : ": ",
                          e.reason()));
    }
  };
  // The failure of batch `b`, naming its lines.
  auto failed = [](const absl::Status& s, const Batch& b) {
    // Who may write is not about the rows: no batch to point at.
    if (absl::IsPermissionDenied(s) || absl::IsUnauthenticated(s)) return s;
    return absl::Status(
        s.code(),
        absl::StrCat("batch of lines ", b.lines.front(), "-", b.lines.back(),
                     " (row i is the i-th record of the batch): ",
                     s.message()));
  };
  // The file's first batch goes alone, as one Ingest call: its answer
  // checks the stream and the principal's grant before the rest is
  // streamed (and a file of one batch needs no more).
  auto send_alone = [&](Batch b, std::mt19937_64& sender_rng) -> absl::Status {
    auto r = WithRetries(args.retries, sender_rng,
                         [&] { return client.IngestEncoded(b.request); });
    if (!r.ok()) return failed(r.status(), b);
    std::deque<Batch> sent;
    sent.push_back(std::move(b));
    count(*r, sent);
    return absl::OkStatus();
  };
  // The rest goes on IngestStream calls of at most kCallBatches batches:
  // the server checks a call's next batch while it writes one, and answers
  // for all of them when the call ends, so the batches of a call are kept
  // until then. A call that fails for a passing reason is made again from
  // its first batch not written (ingest is idempotent by event id).
  // `take` waits for the next batch; false when there is none.
  constexpr size_t kCallBatches = 64;
  auto send_streamed = [&](const std::function<bool(Batch*)>& take,
                           std::mt19937_64& sender_rng) -> absl::Status {
    std::deque<Batch> window;  // sent or to send on this call
    bool more = true;
    int attempt = 0;
    while (true) {
      if (window.empty()) {
        Batch b;
        if (!more || !take(&b)) return absl::OkStatus();
        window.push_back(std::move(b));
      }
      size_t sent = 0;
      auto next = [&](std::string* request) {
        if (sent == window.size()) {
          Batch b;
          if (!more || window.size() >= kCallBatches) return false;
          if (!take(&b)) {
            more = false;
            return false;
          }
          window.push_back(std::move(b));
        }
        *request = window[sent++].request;
        return true;
      };
      v1::IngestResponse applied;  // of a failed call
      auto r = client.IngestStreamEncoded(next, &applied);
      if (r.ok()) {
        count(*r, window);
        window.clear();
        attempt = 0;
        continue;
      }
      const size_t done =
          std::min<size_t>(static_cast<size_t>(applied.batches()),
                           window.size());
      count(applied, window);
      window.erase(window.begin(), window.begin() + done);
      if (done > 0) attempt = 0;
      if (!Retryable(r.status()) || attempt >= args.retries) {
        return window.empty() ? r.status() : failed(r.status(), window.front());
      }
      BackoffSleep(attempt++, sender_rng);
    }
  };

  // Up to --in-flight senders stream batches at once while this thread
  // reads the next. With one (the default) the file's order is the order
  // of acceptance: a replay gives the rows back in it, and a failed batch
  // leaves those before it stored and none after. With more, the server
  // commits concurrent batches together (one write, one sync) and accepts
  // them in any order. After a failure no new batch is sent (those in
  // flight finish).
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Batch> queued;  // handed to the senders, not yet taken
  bool input_done = false;
  absl::Status send_failure;  // the first one
  std::vector<std::thread> senders;
  for (int i = 0; i < args.in_flight; ++i) {
    senders.emplace_back([&, seed = rng()] {
      std::mt19937_64 sender_rng(seed);  // backoff jitter
      auto take = [&](Batch* b) {
        std::unique_lock<std::mutex> l(mu);
        cv.wait(l, [&] {
          return queued.has_value() || input_done || !send_failure.ok();
        });
        if (!queued.has_value() || !send_failure.ok()) return false;
        *b = std::move(*queued);
        queued.reset();
        cv.notify_all();
        return true;
      };
      absl::Status s = send_streamed(take, sender_rng);
      if (!s.ok()) {
        std::lock_guard<std::mutex> l(mu);
        if (send_failure.ok()) send_failure = std::move(s);
        cv.notify_all();
      }
    });
  }
  // Waits for the senders to finish what they have; the first failure, if
  // any.
  auto finish_sending = [&]() {
    {
      std::lock_guard<std::mutex> l(mu);
      input_done = true;
    }
    cv.notify_all();
    for (std::thread& sender : senders) {
      if (sender.joinable()) sender.join();
    }
    return send_failure;
  };
  // Sends the first batch alone, then hands each over once a sender took
  // the previous one.
  bool first = true;
  auto flush = [&]() -> absl::Status {
    if (batch.lines.empty()) return absl::OkStatus();
    if (first) {
      first = false;
      absl::Status s = send_alone(std::move(batch), rng);
      batch = new_batch();
      return s;
    }
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return !queued.has_value() || !send_failure.ok(); });
    if (!send_failure.ok()) return send_failure;
    queued = std::move(batch);
    batch = new_batch();
    cv.notify_all();
    return absl::OkStatus();
  };
  // Every return below stops the sender first.
  struct StopSender {
    std::function<absl::Status()> stop;
    ~StopSender() { (void)stop(); }
  } stop_sender{finish_sending};

  std::string text;
  int64_t line = 0;
  while (true) {
    absl::Status row;
    if (*format == "csv") {
      if (!csv.Next(&cells)) {
        if (!csv.error().ok()) {
          if (!args.skip_invalid) return Fail(csv.error());
          reject(csv.error().message());
        }
        break;
      }
      line = csv.record_line();
      if (cells.size() == 1 && cells[0].empty()) continue;  // blank line
      row = mapper.AppendCsvToRequest(cells, line, &csv.quoted(),
                                      &batch.request);
    } else {
      if (!std::getline(in, text)) break;
      ++line;
      if (text.empty() || text == "\r") continue;
      row = mapper.AppendJsonToRequest(text, line, &batch.request);
    }
    ++rows;
    if (!row.ok()) {
      if (!args.skip_invalid) return Fail(row);
      reject(row.message());
      continue;
    }
    batch.lines.push_back(line);
    if (static_cast<int64_t>(batch.lines.size()) >= args.batch_size) {
      absl::Status s = flush();
      if (!s.ok()) return Fail(s);
      const int64_t pos = in.tellg();
      progress.Update(pos < 0 ? total_bytes : pos, rows);
    }
  }
  absl::Status s = flush();
  if (s.ok()) s = finish_sending();
  if (!s.ok()) return Fail(s);
  progress.Update(total_bytes, rows);
  progress.Done();
  if (rejected > kShownRejects && !rejects.is_open()) {
    std::fprintf(stderr,
                 "... and %lld more rejected rows (list them all with "
                 "--reject-file)\n",
                 static_cast<long long>(rejected - kShownRejects));
  }
  if (watermark == 0) {
    // Nothing was sent (every row was refused here): the server's.
    auto st = client.GetStatus();
    if (st.ok()) watermark = st->watermark();
  }
  std::printf(
      "%s: %lld rows read, %lld accepted, %lld duplicates, %lld rejected%s; "
      "watermark %llu\n",
      args.file.c_str(), static_cast<long long>(rows),
      static_cast<long long>(accepted), static_cast<long long>(duplicates),
      static_cast<long long>(rejected),
      expired == 0
          ? ""
          : absl::StrCat(", ", expired,
                         " expired (older than the stream's retention)")
                .c_str(),
      static_cast<unsigned long long>(watermark));
  return 0;
}

// ---------------------------------------------------------------- replay

struct ReplayArgs {
  std::string stream;
  std::string from;
  std::string to;
  std::string entity;
  uint64_t after_seq = 0;
  uint64_t watermark = 0;
  std::string out = "-";
  std::string format;  // jsonl | csv
};

int RunReplay(Client& client, const ReplayArgs& args) {
  auto stream = client.FindStream(args.stream);
  if (!stream.ok()) return Fail(stream.status());
  RecordMapper mapper(*stream, TimeUnit::kNone);
  v1::ReadEventsRequest request;
  request.set_stream(args.stream);
  request.set_after_seq(args.after_seq);
  request.set_watermark(args.watermark);
  request.set_entity(args.entity);
  if (!args.from.empty()) {
    auto t = ParseTimeFlag("--from", args.from);
    if (!t.ok()) return Fail(t.status().message());
    *request.mutable_from_time() = MicrosToTimestamp(*t);
  }
  if (!args.to.empty()) {
    auto t = ParseTimeFlag("--to", args.to);
    if (!t.ok()) return Fail(t.status().message());
    *request.mutable_to_time() = MicrosToTimestamp(*t);
  }
  auto format_or = DataFormat(args.format, args.out, "jsonl");
  if (!format_or.ok()) return Fail(format_or.status().message());
  const std::string format = *format_or;
  OutputFile file;
  absl::Status opened = file.Open(args.out);
  if (!opened.ok()) return Fail(opened.message());
  std::ostream* out = &file.out();
  if (format == "csv") {
    std::string header;
    for (const auto& h : mapper.CsvHeader()) {
      absl::StrAppend(&header, header.empty() ? "" : ",", CsvEscape(h));
    }
    *out << header << "\n";
  }
  Progress progress("replay", 0);
  int64_t n = 0;
  uint64_t watermark = 0;
  absl::Status s = client.ReadEvents(request, [&](const auto& chunk) {
    watermark = chunk.watermark();
    for (const auto& e : chunk.events()) {
      *out << (format == "csv" ? mapper.CsvRow(e) : mapper.JsonLine(e)) << "\n";
    }
    n += chunk.events_size();
    progress.Update(0, n);
    return static_cast<bool>(*out);
  });
  if (!s.ok()) return Fail(s);
  progress.Done();
  s = file.Commit();
  if (!s.ok()) return Fail(s.message());
  std::fprintf(stderr, "replayed %lld events of '%s' at watermark %llu\n",
               static_cast<long long>(n), args.stream.c_str(),
               static_cast<unsigned long long>(watermark));
  return 0;
}

// ------------------------------------------------------------------- get

struct GetArgs {
  std::string view;
  uint32_t version = 0;
  std::vector<std::string> entities;
  // Or a feature service and one row of keys (COLUMN=VALUE each).
  std::string service;
  uint32_t service_version = 0;
  std::vector<std::string> keys;
  std::string as_of;
  uint64_t watermark = 0;
  std::string format = "table";
};

int RunGet(Client& client, const GetArgs& args) {
  if (args.format != "table" && args.format != "json" && args.format != "csv") {
    return Fail("--format must be table, json or csv");
  }
  v1::GetFeaturesRequest request;
  if (args.service.empty() == args.view.empty()) {
    return Fail("give --view with --entity, or --service with --key");
  }
  std::string label;  // a service row's "entity" column: its keys
  if (!args.service.empty()) {
    if (!args.entities.empty() || args.keys.empty()) {
      return Fail(
          "--service takes --key COLUMN=VALUE (one per part key), "
          "not --entity");
    }
    request.set_service(args.service);
    request.set_service_version(args.service_version);
    auto* keys = request.add_key_rows()->mutable_keys();
    for (const auto& k : args.keys) {
      const size_t eq = k.find('=');
      if (eq == std::string::npos || eq == 0) {
        return Fail(absl::StrCat("--key '", k, "': use COLUMN=VALUE"));
      }
      (*keys)[k.substr(0, eq)] = k.substr(eq + 1);
    }
    label = absl::StrJoin(args.keys, ";");
  } else if (args.entities.empty()) {
    return Fail("--view takes --entity a,b,c");
  }
  request.set_view(args.view);
  request.set_version(args.version);
  for (const auto& e : args.entities) {
    // "u1, u2" means u2, not " u2".
    const absl::string_view entity = absl::StripAsciiWhitespace(e);
    if (entity.empty()) return Fail("--entity: an empty entity in the list");
    request.add_entities(std::string(entity));
  }
  if (!args.as_of.empty()) {
    auto t = ParseTimeFlag("--as-of", args.as_of);
    if (!t.ok()) return Fail(t.status().message());
    *request.mutable_as_of() = MicrosToTimestamp(*t);
  }
  request.set_watermark(args.watermark);
  auto r = client.GetFeatures(request);
  if (!r.ok()) return Fail(r.status());
  for (auto& row : *r->mutable_rows()) {
    if (!label.empty()) row.set_entity(label);
  }
  const std::string as_of = FormatMicros(*TimestampToMicros(r->as_of()));
  if (args.format == "csv") {
    std::string line = "entity";
    for (const auto& n : r->feature_names())
      absl::StrAppend(&line, ",", CsvEscape(n));
    std::printf("%s\n", line.c_str());
    for (const auto& row : r->rows()) {
      line = CsvEscape(row.entity());
      for (const auto& v : row.values()) {
        absl::StrAppend(&line, ",", CsvCell(v));
      }
      std::printf("%s\n", line.c_str());
    }
  } else if (args.format == "json") {
    for (const auto& row : r->rows()) {
      std::printf("%s\n", FeatureRowToJson(r->feature_names(), row).c_str());
    }
  } else {
    std::printf("%s %s v%u as of %s, watermark %llu\n",
                args.service.empty() ? "view" : "service",
                args.service.empty() ? args.view.c_str() : args.service.c_str(),
                r->version(), as_of.c_str(),
                static_cast<unsigned long long>(r->watermark()));
    size_t width = 6;
    for (const auto& n : r->feature_names()) width = std::max(width, n.size());
    for (const auto& row : r->rows()) {
      std::printf("\n%s\n", row.entity().c_str());
      for (int i = 0; i < row.values_size(); ++i) {
        std::printf("  %-*s  %s\n", static_cast<int>(width),
                    r->feature_names(i).c_str(),
                    ValueToJson(row.values(i)).c_str());
      }
    }
  }
  std::fprintf(stderr, "as of %s, watermark %llu\n", as_of.c_str(),
               static_cast<unsigned long long>(r->watermark()));
  return 0;
}

// ---------------------------------------------------------------- TLS

struct TlsArgs {
  bool on = false;
  std::string ca_file, cert_file, key_file, server_name;
};

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, ": cannot read the file"));
  }
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// Any --tls-* flag turns TLS on.
absl::StatusOr<ClientOptions> ClientOptionsFrom(const TlsArgs& tls) {
  ClientOptions options;
  options.tls = tls.on || !tls.ca_file.empty() || !tls.cert_file.empty() ||
                !tls.server_name.empty();
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!tls.ca_file.empty()) {
    auto pem = ReadPem(tls.ca_file, "--tls-ca");
    if (!pem.ok()) return pem.status();
    options.tls_root_pem = std::move(*pem);
  }
  if (!tls.cert_file.empty()) {
    auto cert = ReadPem(tls.cert_file, "--tls-cert");
    if (!cert.ok()) return cert.status();
    auto key = ReadPem(tls.key_file, "--tls-key");
    if (!key.ok()) return key.status();
    options.tls_cert_pem = std::move(*cert);
    options.tls_key_pem = std::move(*key);
  }
  options.tls_server_name = tls.server_name;
  return options;
}

// -------------------------------------------------------------- describe

struct DescribeArgs {
  std::string view;
  uint32_t version = 0;
};

// A view's features as a table: type (of non-null values), aggregation,
// field, window, k and filter.
int RunDescribe(Client& client, const DescribeArgs& args) {
  auto defs = client.ListDefinitions();
  if (!defs.ok()) return Fail(defs.status());
  // A feature service of that name: its parts and output features.
  auto found_service = FindServiceInfo(*defs, args.view, args.version);
  const v1::ServiceInfo* service =
      found_service.ok() ? *found_service : nullptr;
  if (service != nullptr) {
    const v1::FeatureServiceDef& d = service->definition();
    std::printf("service %s v%u, %d parts\n", d.name().c_str(), d.version(),
                d.parts_size());
    if (!d.description().empty()) {
      std::printf("  %s\n", d.description().c_str());
    }
    for (int i = 0; i < d.parts_size(); ++i) {
      const v1::ServicePart& p = d.parts(i);
      std::printf(
          "part %d: view %s v%u by %s%s%s%s\n", i + 1, p.view().c_str(),
          p.view_version(), p.key().c_str(),
          p.prefix().empty() ? "" : ", prefix ", p.prefix().c_str(),
          p.features().empty()
              ? ""
              : absl::StrCat(", features ", absl::StrJoin(p.features(), ","))
                    .c_str());
    }
    std::printf("features: %s\n",
                absl::StrJoin(service->feature_names(), ", ").c_str());
    return 0;
  }
  auto info = FindViewInfo(*defs, args.view, args.version);
  if (!info.ok()) return Fail(info.status());
  const v1::ViewInfo* found = *info;
  const v1::FeatureViewDef& d = found->definition();
  std::printf("view %s v%u over stream %s\n", d.name().c_str(), d.version(),
              d.stream().c_str());
  if (!d.description().empty()) std::printf("  %s\n", d.description().c_str());
  std::printf("%-22s %-14s %-15s %-10s %-9s %-4s %s\n", "feature", "type",
              "aggregation", "field", "window", "k", "filter");
  for (int i = 0; i < d.features_size(); ++i) {
    const v1::FeatureDef& f = d.features(i);
    std::string filter;
    if (f.has_filter()) {
      std::vector<std::string> values;
      for (const auto& v : f.filter().values())
        values.push_back(ValueToJson(v));
      filter = absl::StrCat(f.filter().field(), " ", f.filter().op(), " ",
                            absl::StrJoin(values, ", "));
    }
    std::printf(
        "%-22s %-14s %-15s %-10s %-9s %-4s %s\n", f.name().c_str(),
        i < found->feature_types_size() ? found->feature_types(i).c_str() : "",
        f.aggregation().c_str(), f.field().c_str(), f.window().c_str(),
        f.k() == 0 ? "" : std::to_string(f.k()).c_str(), filter.c_str());
  }
  return 0;
}

// ------------------------------------------------------ unknown commands

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// "unknown command 'stauts' (did you mean 'status'?)" when the first word
// that is not a flag (or a global flag's value) names no command; "" if
// there is none.
std::string UnknownCommand(CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (absl::StartsWith(arg, "-")) {
      // A global option's value follows it unless given as --opt=value.
      const CLI::Option* option = arg.find('=') == std::string::npos
                                      ? app.get_option_no_throw(arg)
                                      : nullptr;
      if (option != nullptr && option->get_type_size() != 0) ++i;
      continue;
    }
    std::string best;
    size_t best_distance = 4;  // suggest only close names
    std::vector<std::string> names;
    for (const CLI::App* cmd : app.get_subcommands({})) {
      const std::string& name = cmd->get_name();
      if (name == arg) return "";
      names.push_back(name);
      const size_t d = EditDistance(arg, name);
      if (d < best_distance) {
        best_distance = d;
        best = name;
      }
    }
    return absl::StrCat(
        "unknown command '", arg, "'",
        best.empty() ? "" : absl::StrCat(" (did you mean '", best, "'?)"),
        "; the commands are ", absl::StrJoin(names, ", "));
  }
  return "";
}

// ---------------------------------------------------------------- backup

int RunBackup(Client& client, const std::string& dir) {
  auto r = client.Backup(dir);
  if (!r.ok()) return Fail(r.status());
  std::printf(
      "backup %s: watermark %llu, %lld files copied (%s), %lld reused\n",
      r->backup_dir().c_str(), static_cast<unsigned long long>(r->watermark()),
      static_cast<long long>(r->files_copied()),
      HumanBytes(r->bytes_copied()).c_str(),
      static_cast<long long>(r->files_reused()));
  std::printf("restore: rawfeatd --restore_from %s --data_dir NEW_DIR ...\n",
              r->backup_dir().c_str());
  return 0;
}

// ---------------------------------------------------------------- erase

int RunErase(Client& client, const std::string& stream,
             const std::string& entity) {
  auto r = client.Erase(stream, entity);
  if (!r.ok()) return Fail(r.status());
  std::printf(
      "erased %llu events of one entity of stream %s (entity sha256 %s); "
      "watermark %llu\n",
      static_cast<unsigned long long>(r->events()), stream.c_str(),
      r->entity_sha256().c_str(),
      static_cast<unsigned long long>(r->watermark()));
  return 0;
}

int RunErasures(Client& client) {
  auto r = client.ListErasures();
  if (!r.ok()) return Fail(r.status());
  std::printf("%-27s %-12s %-16s %-10s %-10s %s\n", "at", "principal", "stream",
              "events", "watermark", "entity sha256");
  for (const v1::Erasure& e : r->erasures()) {
    std::printf("%-27s %-12s %-16s %-10llu %-10llu %s\n",
                FormatMicros(TimestampToMicros(e.at()).value_or(0)).c_str(),
                e.principal().empty() ? "-" : e.principal().c_str(),
                e.stream().c_str(), static_cast<unsigned long long>(e.events()),
                static_cast<unsigned long long>(e.watermark()),
                e.entity_sha256().c_str());
  }
  return 0;
}

// ---------------------------------------------------------------- status

int RunStatus(Client& client) {
  auto st = client.GetStatus();
  if (!st.ok()) return Fail(st.status());
  std::printf("rawfeatd %s\n", st->version().c_str());
  std::printf("watermark  %llu\n",
              static_cast<unsigned long long>(st->watermark()));
  std::printf("data dir   %s (%s, %s free, sync %s)\n", st->data_dir().c_str(),
              HumanBytes(st->disk_bytes()).c_str(),
              HumanBytes(st->disk_free_bytes()).c_str(),
              st->sync() ? "on" : "off");
  std::printf("writes     %s\n",
              st->write_error().empty() ? "ok" : st->write_error().c_str());
  for (const auto& loss : st->data_losses()) {
    std::printf(
        "data loss  seqs %llu..%llu, accepted %s: %s\n",
        static_cast<unsigned long long>(loss.first_seq()),
        static_cast<unsigned long long>(loss.last_seq()),
        FormatMicros(TimestampToMicros(loss.accepted_at()).value_or(0)).c_str(),
        loss.detail().c_str());
  }
  if (!st->auth_problem().empty()) {
    std::printf("auth       %s\n", st->auth_problem().c_str());
  }
  std::printf("tiles      %llu\n",
              static_cast<unsigned long long>(st->tiles()));
  std::printf("uptime     %s\n",
              absl::FormatDuration(
                  absl::Seconds(static_cast<int64_t>(st->uptime_seconds())))
                  .c_str());
  std::string calls;
  for (const auto& c : st->open_calls()) {
    absl::StrAppend(&calls, calls.empty() ? "" : ", ", c.method(), " ",
                    c.open(), "/", c.cap());
  }
  std::printf("open calls %s\n", calls.c_str());
  const std::string metrics =
      st->metrics_address().empty()
          ? "off (rawfeatd --metrics_listen)"
          : absl::StrCat("http://", st->metrics_address(), "/metrics");
  std::printf("metrics    %s\n", metrics.c_str());
  for (const auto& s : st->streams()) {
    std::string kept;
    if (!s.retention().empty() || s.has_horizon()) {
      kept = absl::StrCat(
          ", retention ", s.retention().empty() ? "forever" : s.retention(),
          s.has_horizon()
              ? absl::StrCat(
                    ", horizon ",
                    FormatMicros(TimestampToMicros(s.horizon()).value_or(0)))
              : "");
    }
    std::printf("stream     %-24s %llu events%s\n", s.name().c_str(),
                static_cast<unsigned long long>(s.events()), kept.c_str());
  }
  auto defs = client.ListDefinitions();
  if (defs.ok()) {
    for (const auto& v : defs->views()) {
      std::printf("view       %-24s v%u over %s, %d features\n",
                  v.definition().name().c_str(), v.definition().version(),
                  v.definition().stream().c_str(),
                  v.definition().features_size());
    }
    for (const auto& sv : defs->services()) {
      std::printf("service    %-24s v%u, %d parts, %d features\n",
                  sv.definition().name().c_str(), sv.definition().version(),
                  sv.definition().parts_size(), sv.feature_names_size());
    }
  }
  for (const auto& p : st->definition_problems()) {
    std::printf("problem    %s\n", p.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace rawfeat

int main(int argc, char** argv) {
  using namespace rawfeat;  // NOLINT: main only
  CLI::App app{"rawfeat: command-line client of the rawfeatd feature store"};
  app.require_subcommand(1);
  // Global flags may also come after the command (`rawfeat status --server
  // H:P`): subcommands hand the flags they do not know to the app.
  app.fallthrough();
  std::string server = "127.0.0.1:7070";
  app.add_option("--server", server, "rawfeatd address HOST:PORT")
      ->capture_default_str();
  // The token never comes from a flag value (it would land in shell
  // history): RAWFEAT_TOKEN or a file.
  std::string token_file;
  app.add_option("--token-file", token_file,
                 "file holding the bearer token for servers with --auth_file "
                 "(default: $RAWFEAT_TOKEN)");
  TlsArgs tls;
  app.add_flag("--tls", tls.on, "connect with TLS (the system's roots)");
  app.add_option("--tls-ca", tls.ca_file,
                 "TLS with this CA bundle (PEM) instead of the system's");
  app.add_option("--tls-cert", tls.cert_file,
                 "client certificate (PEM) for servers that require mTLS");
  app.add_option("--tls-key", tls.key_file, "client private key (PEM)");
  app.add_option("--tls-server-name", tls.server_name,
                 "the name the server's certificate must carry (for IP "
                 "addresses and test certificates)");

  ApplyArgs apply;
  auto* apply_cmd = app.add_subcommand(
      "apply", "validate and register definitions (a .textproto or a folder)");
  apply_cmd->add_option("path", apply.path, "file or folder")->required();
  apply_cmd->add_flag("--dry-run", apply.dry_run, "show the diff only");

  IngestArgs ingest;
  auto* ingest_cmd =
      app.add_subcommand("ingest", "write raw events from CSV or JSON Lines");
  ingest_cmd->add_option("--stream", ingest.stream, "stream name")->required();
  ingest_cmd->add_option("file", ingest.file, "input .csv or .jsonl")
      ->required();
  ingest_cmd->add_option("--format", ingest.format, "csv or jsonl");
  ingest_cmd->add_option("--batch-size", ingest.batch_size, "rows per batch")
      ->capture_default_str();
  ingest_cmd->add_flag("--skip-invalid", ingest.skip_invalid,
                       "write valid rows, skip and report invalid ones");
  ingest_cmd->add_option("--reject-file", ingest.reject_file,
                         "with --skip-invalid: where rejected rows are listed");
  ingest_cmd
      ->add_option("--time-unit", ingest.time_unit,
                   "unit of bare integer times: s, ms or us")
      ->capture_default_str();
  ingest_cmd
      ->add_option("--retries", ingest.retries,
                   "retries of a batch on UNAVAILABLE/DEADLINE_EXCEEDED")
      ->capture_default_str();
  ingest_cmd
      ->add_option("--in-flight", ingest.in_flight,
                   "batches sent at once (more than 1: faster, accepted in any "
                   "order)")
      ->capture_default_str();

  ReplayArgs replay;
  auto* replay_cmd =
      app.add_subcommand("replay", "read raw events back in ingest order");
  replay_cmd->add_option("--stream", replay.stream, "stream name")->required();
  replay_cmd->add_option("--from", replay.from, "event time >= T (RFC 3339)");
  replay_cmd->add_option("--to", replay.to, "event time < T (RFC 3339)");
  replay_cmd->add_option("--after-seq", replay.after_seq, "only seq > N");
  replay_cmd->add_option("--watermark", replay.watermark, "only seq <= N");
  replay_cmd->add_option("--entity", replay.entity, "one entity only");
  replay_cmd->add_option("--out", replay.out, "output file (- = stdout)")
      ->capture_default_str();
  replay_cmd->add_option("--format", replay.format, "jsonl or csv");

  GetArgs get;
  auto* get_cmd = app.add_subcommand(
      "get", "features of a view for entities, or of a feature service");
  get_cmd->add_option("--view", get.view, "view name");
  get_cmd->add_option("--version", get.version, "view version (0 = latest)");
  get_cmd->add_option("--entity", get.entities, "entities, comma-separated")
      ->delimiter(',');
  get_cmd->add_option("--service", get.service, "feature service name");
  get_cmd->add_option("--service-version", get.service_version,
                      "service version (0 = latest)");
  get_cmd->add_option("--key", get.keys,
                      "with --service: COLUMN=VALUE, one per key column "
                      "(e.g. --key user_id=u1 --key merchant_id=m9)");
  get_cmd->add_option("--as-of", get.as_of,
                      "RFC 3339, or epoch with a unit suffix (s, ms, us); "
                      "default now");
  get_cmd->add_option("--watermark", get.watermark, "0 = latest");
  get_cmd->add_option("--format", get.format, "table, json or csv")
      ->capture_default_str();

  SnapshotArgs snapshot;
  auto* snapshot_cmd = AddSnapshotCommand(&app, &snapshot);
  JoinArgs join;
  auto* join_cmd = AddJoinCommand(&app, &join);
  CopyArgs copy;
  auto* copy_cmd = AddCopyCommand(&app, &copy);
  DiffArgs diff;
  auto* diff_cmd = AddDiffCommand(&app, &diff);
  BackfillArgs backfill;
  auto* backfill_cmd = AddBackfillCommand(&app, &backfill);

  DescribeArgs describe;
  auto* describe_cmd = app.add_subcommand(
      "describe",
      "a view's features (types, aggregations, windows, filters), or a "
      "feature service's parts");
  describe_cmd->add_option("name", describe.view, "view or service name")
      ->required();
  describe_cmd->add_option("--version", describe.version,
                           "view version (0 = latest)");

  std::string backup_dir;
  auto* backup_cmd = app.add_subcommand(
      "backup",
      "a consistent online backup of the whole store into a directory on the "
      "server's machine (incremental: unchanged table files are reused)");
  backup_cmd
      ->add_option("--out", backup_dir,
                   "absolute path on the server: new, empty, or holding "
                   "earlier backups of this store")
      ->required();

  std::string erase_stream, erase_entity;
  auto* erase_cmd = app.add_subcommand(
      "erase",
      "delete every event of one entity of a stream (its events, ids, log "
      "entries and tiles), e.g. for a GDPR erasure request; recorded in the "
      "erasure log (admin only)");
  erase_cmd->add_option("--stream", erase_stream, "stream name")->required();
  erase_cmd->add_option("--entity", erase_entity, "the entity to erase")
      ->required();
  auto* erasures_cmd = app.add_subcommand(
      "erasures", "the erasure log: when, who, stream, entity hash, events");

  app.add_subcommand("status", "server version, counts, watermark, problems");
  for (CLI::App* cmd : app.get_subcommands({})) {
    cmd->footer(
        "Global options (before or after the command): --server HOST:PORT "
        "(127.0.0.1:7070), --token-file FILE (default $RAWFEAT_TOKEN), --tls, "
        "--tls-ca FILE, --tls-cert FILE, --tls-key FILE, --tls-server-name "
        "NAME. See rawfeat --help.\n");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    const std::string unknown = UnknownCommand(app, argc, argv);
    if (!unknown.empty()) {
      std::fprintf(stderr, "rawfeat: %s\n", unknown.c_str());
      return 2;
    }
    std::fprintf(stderr, "rawfeat: %s (see --help)\n", e.what());
    return 2;
  }
  auto client_options = ClientOptionsFrom(tls);
  if (!client_options.ok()) return Fail(client_options.status());
  auto token = TokenFrom(token_file, "--token-file", "RAWFEAT_TOKEN", "");
  if (!token.ok()) return Fail(token.status());
  client_options->token = std::move(*token);
  Client client(server, *client_options);
  if (*apply_cmd) return RunApply(client, apply);
  if (*ingest_cmd) return RunIngest(client, ingest);
  if (*replay_cmd) return RunReplay(client, replay);
  if (*get_cmd) return RunGet(client, get);
  if (*snapshot_cmd) return RunSnapshot(client, snapshot);
  if (*join_cmd) return RunJoin(client, join);
  if (*copy_cmd) return RunCopy(copy, *client_options);
  if (*describe_cmd) return RunDescribe(client, describe);
  if (*diff_cmd) return RunDiff(server, diff, *client_options);
  if (*backfill_cmd) return RunBackfill(server, backfill, *client_options);
  if (*backup_cmd) return RunBackup(client, backup_dir);
  if (*erase_cmd) return RunErase(client, erase_stream, erase_entity);
  if (*erasures_cmd) return RunErasures(client);
  return RunStatus(client);
}
