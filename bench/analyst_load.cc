// End-to-end benchmark of the analyst paths: Snapshot of every entity as of
// one time, and a point-in-time JoinFeatures of L label rows with random
// timestamps (sent unsorted), on the workload of features_load. In the same
// run the same data goes to CSV and into DuckDB (the npm package
// @duckdb/node-api, run by node), which answers both questions with SQL
// window aggregates over [t - W, t); we print rawfeat time / DuckDB time and
// check that a sample of rows agrees. Every phase is bounded.
//
//   analyst_load --rawfeatd build/server/rawfeatd
//                --duckdb_modules build/duckdb/node_modules

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/scratch_dir.h"
#include "bench/workload.h"
#include "bench/workload_flags.h"
#include "client/client.h"
#include "client/local_server.h"
#include "client/records.h"
#include "nlohmann/json.hpp"
#include "server/common/time_util.h"

ABSL_FLAG(std::string, duckdb_modules, "build/duckdb/node_modules",
          "node_modules folder holding @duckdb/node-api (empty: skip DuckDB)");
ABSL_FLAG(std::string, node, "node", "node binary");
ABSL_FLAG(int64_t, labels, 1000000, "label rows of the join");
ABSL_FLAG(std::string, server_flags, "",
          "extra rawfeatd flags, comma-separated");

namespace rawfeat {
namespace {

using bench::Entity;
using bench::kEnd;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Label i: an entity drawn like the events (labels follow activity) and a
// uniform time over the history.
struct Label {
  int rank;
  int64_t time_us;
};
std::vector<Label> MakeLabels(const bench::Workload& w, int64_t n) {
  std::mt19937_64 rng(42);
  const uint64_t span = static_cast<uint64_t>(w.days) * 86400ULL * 1000000;
  std::vector<Label> labels(n);
  for (auto& l : labels) {
    l.rank = w.zipf.Sample(rng);
    l.time_us = kEnd - static_cast<int64_t>(rng() % span);
  }
  return labels;
}

// A feature value as JSON, for comparing with DuckDB's rows.
nlohmann::json ToJson(const v1::Value& v) {
  return nlohmann::json::parse(ValueToJson(v));
}

// Agreement of one row, feature by feature. DuckDB sums doubles in
// floating point (not exactly), so doubles agree within 1e-9 relative.
int CountDisagreements(const google::protobuf::RepeatedPtrField<std::string>&
                           names,
                       const google::protobuf::RepeatedPtrField<v1::Value>& ours,
                       const nlohmann::json& theirs, std::string* example) {
  int bad = 0;
  for (int i = 0; i < names.size() && i < ours.size(); ++i) {
    const nlohmann::json a = ToJson(ours[i]);
    nlohmann::json b = theirs.contains(names[i]) ? theirs[names[i]] : nullptr;
    // DuckDB's JSON rows carry BIGINT/DOUBLE as strings or numbers.
    if (b.is_string() && (a.is_number())) {
      b = nlohmann::json::parse(b.get<std::string>(), nullptr, false);
    }
    bool same;
    if (a.is_number() && b.is_number()) {
      const double x = a.get<double>(), y = b.get<double>();
      same = x == y || std::fabs(x - y) <= 1e-9 * std::max(std::fabs(x),
                                                           std::fabs(y));
    } else {
      same = a == b;
    }
    if (!same) {
      ++bad;
      if (example->empty()) {
        *example = absl::StrCat(names[i], ": rawfeat ", a.dump(), ", duckdb ",
                                b.dump());
      }
    }
  }
  return bad;
}

int Main() {
  const bench::Workload workload = bench::WorkloadFromFlags();
  const int64_t n_labels = absl::GetFlag(FLAGS_labels);
  const ScratchDir scratch(absl::GetFlag(FLAGS_work_dir), "albench");
  const std::string& work = scratch.path();
  std::printf(
      "analyst_load: %lld events, %d entities (hottest has %.1f%% of events), "
      "%d days, %lld labels\n",
      static_cast<long long>(workload.events), workload.entities,
      100 * workload.zipf.Share(0), workload.days,
      static_cast<long long>(n_labels));
  const auto loaded = workload.StartLoaded(
      absl::GetFlag(FLAGS_rawfeatd), work, absl::GetFlag(FLAGS_server_flags),
      absl::GetFlag(FLAGS_settle_seconds));
  if (loaded == nullptr) return 1;
  LocalServer& server = *loaded;
  Client client(server.address());
  auto start = Clock::now();

  // Samples compared with DuckDB: the 5 heaviest entities and 45 others;
  // every (L/200)-th label.
  std::map<std::string, v1::FeatureRow> snap_sample;
  for (int r = 0; r < 5; ++r) snap_sample[Entity(r)];
  std::mt19937_64 rng(7);
  for (int i = 0; i < 45; ++i) snap_sample[Entity(workload.zipf.Sample(rng))];
  const int64_t label_step = std::max<int64_t>(1, n_labels / 200);

  // Snapshot as of the end of the history (every event, lifetime windows).
  v1::SnapshotRequest snap;
  snap.set_view("bench");
  *snap.mutable_as_of() = MicrosToTimestamp(kEnd);
  google::protobuf::RepeatedPtrField<std::string> names;
  double snap_secs[2] = {0, 0};
  int64_t snap_rows = 0;
  for (int run = 0; run < 2; ++run) {
    snap_rows = 0;
    start = Clock::now();
    absl::Status s = client.Snapshot(snap, [&](const v1::SnapshotChunk& c) {
      if (c.feature_names_size() > 0) names = c.feature_names();
      for (const auto& row : c.rows()) {
        auto it = snap_sample.find(row.entity());
        if (it != snap_sample.end()) it->second = row;
      }
      snap_rows += c.rows_size();
      return true;
    });
    snap_secs[run] = Since(start);
    if (!s.ok()) {
      std::fprintf(stderr, "Snapshot: %s\n", s.ToString().c_str());
      return 1;
    }
    std::printf("snapshot run %d: %lld entities in %.2f s (RSS %.0f MiB)\n",
                run + 1, static_cast<long long>(snap_rows), snap_secs[run],
                server.RssBytes() / 1048576.0);
    std::fflush(stdout);
  }

  // Join: labels sent in random (unsorted) order, 1,000 per message.
  const std::vector<Label> labels = MakeLabels(workload, n_labels);
  std::map<int64_t, v1::JoinedRow> join_sample;
  int64_t sent = 0, received = 0;
  v1::JoinFeaturesRequest first;
  first.set_view("bench");
  start = Clock::now();
  double first_row_secs = 0;
  double sent_secs = 0;
  absl::Status s = client.JoinFeatures(
      first,
      [&](v1::JoinFeaturesRequest* m) -> absl::StatusOr<bool> {
        for (int k = 0; k < 1000 && sent < n_labels; ++k, ++sent) {
          auto* row = m->add_rows();
          row->set_entity(Entity(labels[sent].rank));
          *row->mutable_time() = MicrosToTimestamp(labels[sent].time_us);
          row->add_passthrough(absl::StrCat(sent));
        }
        if (m->rows_size() == 0) sent_secs = Since(start);
        return m->rows_size() > 0;
      },
      [&](const v1::JoinFeaturesResponse& r) {
        if (received == 0) first_row_secs = Since(start);
        for (const auto& row : r.rows()) {
          if (static_cast<int64_t>(row.row_index()) % label_step == 0) {
            join_sample[static_cast<int64_t>(row.row_index())] = row;
          }
        }
        received += r.rows_size();
        return true;
      });
  const double join_secs = Since(start);
  if (!s.ok() || received != n_labels) {
    std::fprintf(stderr, "JoinFeatures: %s (%lld of %lld rows)\n",
                 s.ToString().c_str(), static_cast<long long>(received),
                 static_cast<long long>(n_labels));
    return 1;
  }
  const long long rss = server.PeakRssBytes();
  const long long rss_now = server.RssBytes();
  std::printf(
      "join: %lld rows in %.2f s (labels sent after %.2f s, first row back "
      "after %.2f s)\n",
      static_cast<long long>(received), join_secs, sent_secs, first_row_secs);
  std::printf("rawfeatd RSS after the join %.0f MiB, peak %.0f MiB\n",
              rss_now / 1048576.0, rss / 1048576.0);
  std::fflush(stdout);
  server.Terminate();

  // DuckDB on the same data.
  double duck_snap = 0, duck_join = 0, duck_load = 0;
  std::string agreement = "DuckDB skipped";
  const std::string modules = absl::GetFlag(FLAGS_duckdb_modules);
  if (!modules.empty()) {
    start = Clock::now();
    {
      std::ofstream orders(work + "/orders.csv");
      orders << "user_id,t,amount,quantity,category\n";
      for (int64_t i = 0; i < workload.events; ++i) {
        const bench::Order o = workload.Event(i);
        orders << Entity(o.rank) << ',' << o.time_us << ','
               << FormatDouble(o.amount) << ',' << o.quantity << ','
               << o.category << '\n';
      }
      std::ofstream out(work + "/labels.csv");
      out << "label_id,user_id,ts\n";
      for (int64_t i = 0; i < n_labels; ++i) {
        out << i << ',' << Entity(labels[i].rank) << ',' << labels[i].time_us
            << '\n';
      }
      std::ofstream se(work + "/sample_entities.txt");
      for (const auto& [e, row] : snap_sample) se << e << '\n';
      std::ofstream sl(work + "/sample_labels.txt");
      for (const auto& [i, row] : join_sample) sl << i << '\n';
    }
    std::printf("CSV for DuckDB written in %.1f s\n", Since(start));
    std::fflush(stdout);
    const std::string cmd = absl::StrCat(
        absl::GetFlag(FLAGS_node), " ", PROJECT_SOURCE_DIR,
        "/bench/duckdb/analyst.cjs ", modules, " ", work, " ", kEnd);
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "DuckDB run failed: %s\n", cmd.c_str());
      return 1;
    }
    std::ifstream in(work + "/duckdb.json");
    const nlohmann::json duck = nlohmann::json::parse(in, nullptr, false);
    if (duck.is_discarded()) {
      std::fprintf(stderr, "cannot read %s/duckdb.json\n", work.c_str());
      return 1;
    }
    duck_load = duck["load"].get<double>();
    duck_snap = duck["snapshot"].get<double>();
    duck_join = duck["join"].get<double>();
    int rows = 0, bad = 0, missing = 0;
    std::string example;
    for (const auto& r : duck["snapshot_sample"]) {
      auto it = snap_sample.find(r["user_id"].get<std::string>());
      if (it == snap_sample.end()) continue;
      ++rows;
      bad += CountDisagreements(names, it->second.values(), r, &example);
    }
    for (const auto& r : duck["join_sample"]) {
      const nlohmann::json& id = r["label_id"];
      const int64_t i = id.is_string() ? std::stoll(id.get<std::string>())
                                       : id.get<int64_t>();
      auto it = join_sample.find(i);
      if (it == join_sample.end()) continue;
      ++rows;
      bad += CountDisagreements(names, it->second.values(), r, &example);
    }
    missing = static_cast<int>(snap_sample.size() + join_sample.size()) - rows;
    agreement = absl::StrCat(
        rows, " sample rows x ", names.size(), " features compared: ", bad,
        " disagree, ", missing, " rows missing in DuckDB",
        duck["snapshot_rows"].get<int64_t>() == snap_rows
            ? ""
            : absl::StrCat("; DuckDB snapshot has ",
                           duck["snapshot_rows"].get<int64_t>(), " rows"),
        example.empty() ? "" : absl::StrCat(" (e.g. ", example, ")"));
  }

  std::printf("\n%-34s %10s %10s %14s\n", "question", "rawfeat s",
              "duckdb s", "rawfeat/duckdb");
  auto line = [](const char* what, double ours, double theirs) {
    std::printf("%-34s %10.2f %10.2f %14.2f\n", what, ours, theirs,
                theirs > 0 ? ours / theirs : 0.0);
  };
  line("snapshot, all entities (1st run)", snap_secs[0], duck_snap);
  line("snapshot, all entities (2nd run)", snap_secs[1], duck_snap);
  line(absl::StrCat("point-in-time join, ", n_labels, " labels").c_str(),
       join_secs, duck_join);
  std::printf("DuckDB CSV load (not in the ratios): %.2f s\n", duck_load);
  std::printf("agreement: %s\n", agreement.c_str());
  std::printf("rawfeatd peak RSS %.0f MiB\n", rss / 1048576.0);
  return 0;
}

}  // namespace
}  // namespace rawfeat

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return rawfeat::Main();
}
