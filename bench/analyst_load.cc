// End-to-end benchmark of the analyst paths: Snapshot of every entity as of
// one time, and a point-in-time JoinFeatures of L label rows with random
// timestamps (sent unsorted), on the workload of features_load. With
// --service (default) also a `payments` stream keyed by merchant and a
// 3-part feature service (two views on `orders` by user, one on `payments`
// by merchant): the service's join against each part's own join. In the
// same run the same data goes to CSV and into DuckDB (the npm package
// @duckdb/node-api, run by node), which answers the same questions with SQL
// window aggregates over [t - W, t); we print rawfeat time / DuckDB time and
// check that a sample of rows agrees. Every phase is bounded.
//
//   analyst_load --rawfeatd build/server/rawfeatd
//                --duckdb_modules build/duckdb/node_modules

#include <unistd.h>

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
#include "absl/strings/str_cat.h"
#include "bench/scratch_dir.h"
#include "bench/workload.h"
#include "bench/workload_flags.h"
#include "client/client.h"
#include "client/local_server.h"
#include "client/records.h"
#include "nlohmann/json.hpp"
#include "server/common/time_util.h"

ABSL_FLAG(bool, restart, true,
          "restart rawfeatd after loading, before the reads (no process "
          "memory carries over; the page cache may be warm)");
ABSL_FLAG(std::string, duckdb_modules, "build/duckdb/node_modules",
          "node_modules folder holding @duckdb/node-api (empty: skip DuckDB)");
ABSL_FLAG(std::string, node, "node", "node binary");
ABSL_FLAG(int64_t, labels, 1000000, "label rows of the join");
ABSL_FLAG(std::string, server_flags, "",
          "extra rawfeatd flags, comma-separated");
ABSL_FLAG(bool, service, true,
          "also measure a 3-part feature service join (adds a payments "
          "stream keyed by merchant)");
ABSL_FLAG(int64_t, payments, -1,
          "events of the payments stream (default: half of --events)");
ABSL_FLAG(int, merchants, 10000, "distinct merchants (Zipf like users)");

namespace rawfeat {
namespace {

using bench::Entity;
using bench::kEnd;
using Clock = std::chrono::steady_clock;

// The service workload: payments keyed by merchant, a second view on
// orders, a view on payments, and the 3-part service over them.
constexpr char kServiceDefinitions[] = R"(
streams {
  name: "payments" entity_field: "merchant_id" time_field: "pay_time"
  fields { name: "amount" type: DOUBLE required: true }
}
views {
  name: "bench_b" version: 1 stream: "orders"
  features { name: "orders_1d"        aggregation: "count" window: "1d" }
  features { name: "spend_30d"        aggregation: "sum" field: "amount"   window: "30d" }
  features { name: "min_amount_7d"    aggregation: "min" field: "amount"   window: "7d" }
  features { name: "avg_quantity_30d" aggregation: "avg" field: "quantity" window: "30d" }
  features { name: "max_quantity_1d"  aggregation: "max" field: "quantity" window: "1d" }
}
views {
  name: "merchant" version: 1 stream: "payments"
  features { name: "pay_1h"      aggregation: "count" window: "1h" }
  features { name: "pay_sum_1d"  aggregation: "sum" field: "amount" window: "1d" }
  features { name: "pay_avg_7d"  aggregation: "avg" field: "amount" window: "7d" }
  features { name: "pay_max_30d" aggregation: "max" field: "amount" window: "30d" }
  features { name: "pay_life"    aggregation: "count" window: "lifetime" }
}
services {
  name: "training" version: 1
  parts { view: "bench"    view_version: 1 key: "user_id"     prefix: "u_" }
  parts { view: "bench_b"  view_version: 1 key: "user_id"     prefix: "b_" }
  parts { view: "merchant" view_version: 1 key: "merchant_id" prefix: "m_" }
}
)";

std::string Merchant(int rank) { return absl::StrCat("merchant-", rank); }

struct Payment {
  int merchant;
  int64_t time_us;
  double amount;
};
// Payment i: a pure function of (i, the workload), like Workload::Event.
Payment MakePayment(int64_t i, const bench::Zipf& merchants, int days) {
  uint64_t s = static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL + 777;
  auto draw = [&]() { return s = bench::Mix(s); };
  const uint64_t span = static_cast<uint64_t>(days) * 86400ULL * 1000000;
  Payment p;
  p.merchant = merchants.Sample(static_cast<double>(draw() >> 11) * 0x1.0p-53);
  p.time_us = kEnd - 1 - static_cast<int64_t>(draw() % span);
  p.amount = static_cast<double>(draw() % 100000) / 100;
  return p;
}

// Resets the peak RSS (VmHWM) of process `pid` to its current RSS.
void ResetPeakRss(pid_t pid) {
  std::ofstream(absl::StrCat("/proc/", pid, "/clear_refs")) << "5";
}

// Keeps every `step`-th answered row (by row index) in `sample`.
std::function<void(const v1::JoinedRow&)> SampleEvery(
    int64_t step, std::map<int64_t, v1::JoinedRow>* sample) {
  return [step, sample](const v1::JoinedRow& row) {
    const auto index = static_cast<int64_t>(row.row_index());
    if (index % step == 0) (*sample)[index] = row;
  };
}

struct JoinTiming {
  double total = 0, sent = 0, first_row = 0;
  double server_cpu = 0;   // rawfeatd's CPU seconds during the join
  long long peak_rss = 0;  // rawfeatd's peak RSS during the join
  int64_t rows = 0;
};
// One JoinFeatures of `n` label rows (`make_row(i, row)` fills row i),
// 1,000 per message; `on_row` sees every answered row. Prints failures.
bool TimedJoin(Client& client, LocalServer& server,
               const v1::JoinFeaturesRequest& first, int64_t n,
               const std::function<void(int64_t, v1::LabelRow*)>& make_row,
               const std::function<void(const v1::JoinedRow&)>& on_row,
               JoinTiming* timing) {
  int64_t sent = 0;
  *timing = JoinTiming();
  ResetPeakRss(server.pid());
  const double cpu_before = server.CpuSeconds();
  const auto start = Clock::now();
  auto since = [&] {
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  absl::Status s = client.JoinFeatures(
      first,
      [&](v1::JoinFeaturesRequest* m) -> absl::StatusOr<bool> {
        for (int k = 0; k < 1000 && sent < n; ++k, ++sent) {
          make_row(sent, m->add_rows());
        }
        if (m->rows_size() == 0) timing->sent = since();
        return m->rows_size() > 0;
      },
      [&](const v1::JoinFeaturesResponse& r) {
        if (timing->rows == 0) timing->first_row = since();
        for (const auto& row : r.rows()) on_row(row);
        timing->rows += r.rows_size();
        return true;
      });
  timing->total = since();
  timing->server_cpu = server.CpuSeconds() - cpu_before;
  timing->peak_rss = server.PeakRssBytes();
  if (!s.ok() || timing->rows != n) {
    std::fprintf(stderr, "JoinFeatures of %s: %s (%lld of %lld rows)\n",
                 first.service().empty() ? first.view().c_str()
                                         : first.service().c_str(),
                 s.ToString().c_str(), static_cast<long long>(timing->rows),
                 static_cast<long long>(n));
    return false;
  }
  return true;
}

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
int CountDisagreements(
    const google::protobuf::RepeatedPtrField<std::string>& names,
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
      same = x == y ||
             std::fabs(x - y) <= 1e-9 * std::max(std::fabs(x), std::fabs(y));
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
  const bool with_service = absl::GetFlag(FLAGS_service);
  const int64_t n_payments = absl::GetFlag(FLAGS_payments) >= 0
                                 ? absl::GetFlag(FLAGS_payments)
                                 : workload.events / 2;
  const bench::Zipf merchants(absl::GetFlag(FLAGS_merchants),
                              absl::GetFlag(FLAGS_zipf));
  std::function<bool(const std::string&)> load_payments;
  if (with_service) {
    std::ofstream(work + "/service.textproto") << kServiceDefinitions;
    load_payments = [&](const std::string& address) {
      const auto start = Clock::now();
      const bool ok = bench::LoadEvents(
          address, n_payments,
          [&](int64_t begin, int64_t end, v1::IngestRequest* r) {
            r->set_stream("payments");
            for (int64_t i = begin; i < end; ++i) {
              const Payment p = MakePayment(i, merchants, workload.days);
              v1::Event* e = r->add_events();
              e->set_event_id(absl::StrCat("p", i));
              e->set_entity(Merchant(p.merchant));
              *e->mutable_event_time() = MicrosToTimestamp(p.time_us);
              (*e->mutable_fields())["amount"].set_double_value(p.amount);
            }
          });
      std::printf("loaded %lld payments in %.1f s\n",
                  static_cast<long long>(n_payments), Since(start));
      return ok;
    };
  }
  const auto loaded = workload.StartLoaded(
      absl::GetFlag(FLAGS_rawfeatd), work, absl::GetFlag(FLAGS_server_flags),
      absl::GetFlag(FLAGS_settle_seconds), load_payments,
      absl::GetFlag(FLAGS_restart));
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

  // Peak RSS so far (each join resets the kernel's peak, then reads it).
  long long peak_rss = server.PeakRssBytes();

  // Join: labels sent in random (unsorted) order, 1,000 per message.
  const std::vector<Label> labels = MakeLabels(workload, n_labels);
  std::map<int64_t, v1::JoinedRow> join_sample;
  v1::JoinFeaturesRequest first;
  first.set_view("bench");
  JoinTiming join;
  if (!TimedJoin(
          client, server, first, n_labels,
          [&](int64_t i, v1::LabelRow* row) {
            row->set_entity(Entity(labels[i].rank));
            *row->mutable_time() = MicrosToTimestamp(labels[i].time_us);
            row->add_passthrough(absl::StrCat(i));
          },
          SampleEvery(label_step, &join_sample), &join)) {
    return 1;
  }
  const double join_secs = join.total;
  std::printf(
      "join: %lld rows in %.2f s (labels sent after %.2f s, first row back "
      "after %.2f s; rawfeatd CPU %.2f s, peak RSS %.0f MiB)\n",
      static_cast<long long>(join.rows), join.total, join.sent, join.first_row,
      join.server_cpu, join.peak_rss / 1048576.0);
  peak_rss = std::max(peak_rss, join.peak_rss);
  std::fflush(stdout);

  // The service: each part joined alone (by its own key), then the 3-part
  // service at once. Each label also has a merchant.
  std::vector<int> label_merchants;
  double part_secs[3] = {0, 0, 0}, service_secs = 0;
  std::map<int64_t, v1::JoinedRow> service_sample;
  google::protobuf::RepeatedPtrField<std::string> service_names;
  if (with_service) {
    std::mt19937_64 mrng(43);
    label_merchants.resize(static_cast<size_t>(n_labels));
    for (int& m : label_merchants) m = merchants.Sample(mrng);
    const char* views[3] = {"bench", "bench_b", "merchant"};
    for (int part = 0; part < 3; ++part) {
      v1::JoinFeaturesRequest single;
      single.set_view(views[part]);
      JoinTiming t;
      if (!TimedJoin(
              client, server, single, n_labels,
              [&](int64_t i, v1::LabelRow* row) {
                row->set_entity(part < 2 ? Entity(labels[i].rank)
                                         : Merchant(label_merchants[i]));
                *row->mutable_time() = MicrosToTimestamp(labels[i].time_us);
                row->add_passthrough(absl::StrCat(i));
              },
              [](const v1::JoinedRow&) {}, &t)) {
        return 1;
      }
      part_secs[part] = t.total;
      std::printf(
          "join of part %d alone (view %s): %.2f s (labels sent after %.2f "
          "s; rawfeatd CPU %.2f s, peak RSS %.0f MiB)\n",
          part + 1, views[part], t.total, t.sent, t.server_cpu,
          t.peak_rss / 1048576.0);
      peak_rss = std::max(peak_rss, t.peak_rss);
      std::fflush(stdout);
    }
    v1::JoinFeaturesRequest service;
    service.set_service("training");
    service.add_key_columns("user_id");
    service.add_key_columns("merchant_id");
    JoinTiming t;
    if (!TimedJoin(
            client, server, service, n_labels,
            [&](int64_t i, v1::LabelRow* row) {
              row->add_key_values(Entity(labels[i].rank));
              row->add_key_values(Merchant(label_merchants[i]));
              *row->mutable_time() = MicrosToTimestamp(labels[i].time_us);
              row->add_passthrough(absl::StrCat(i));
            },
            SampleEvery(label_step, &service_sample), &t)) {
      return 1;
    }
    service_secs = t.total;
    peak_rss = std::max(peak_rss, t.peak_rss);
    std::printf(
        "service join (3 parts): %lld rows in %.2f s (labels sent after %.2f "
        "s, first row back after %.2f s; rawfeatd CPU %.2f s, peak RSS %.0f "
        "MiB); %.2fx the slowest part alone\n",
        static_cast<long long>(t.rows), t.total, t.sent, t.first_row,
        t.server_cpu, t.peak_rss / 1048576.0,
        t.total / std::max({part_secs[0], part_secs[1], part_secs[2]}));
    auto defs = client.ListDefinitions();
    if (defs.ok()) {
      for (const auto& sv : defs->services()) {
        if (sv.definition().name() == "training") {
          service_names = sv.feature_names();
        }
      }
    }
  }
  const long long rss = peak_rss;
  const long long rss_now = server.RssBytes();
  std::printf("rawfeatd RSS after the joins %.0f MiB, peak %.0f MiB\n",
              rss_now / 1048576.0, rss / 1048576.0);
  std::fflush(stdout);
  server.Terminate();

  // DuckDB on the same data.
  double duck_snap = 0, duck_join = 0, duck_load = 0, duck_service = 0;
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
      out << "label_id,user_id,merchant_id,ts\n";
      for (int64_t i = 0; i < n_labels; ++i) {
        out << i << ',' << Entity(labels[i].rank) << ','
            << (with_service ? Merchant(label_merchants[i]) : "") << ','
            << labels[i].time_us << '\n';
      }
      if (with_service) {
        std::ofstream payments(work + "/payments.csv");
        payments << "merchant_id,t,amount\n";
        for (int64_t i = 0; i < n_payments; ++i) {
          const Payment p = MakePayment(i, merchants, workload.days);
          payments << Merchant(p.merchant) << ',' << p.time_us << ','
                   << FormatDouble(p.amount) << '\n';
        }
      }
      std::ofstream se(work + "/sample_entities.txt");
      for (const auto& [e, row] : snap_sample) se << e << '\n';
      std::ofstream sl(work + "/sample_labels.txt");
      for (const auto& [i, row] : join_sample) sl << i << '\n';
      std::ofstream ss(work + "/sample_service_labels.txt");
      for (const auto& [i, row] : service_sample) ss << i << '\n';
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
    if (with_service) duck_service = duck["service"].get<double>();
    int rows = 0, bad = 0, missing = 0, values = 0;
    std::string example;
    for (const auto& r : duck["snapshot_sample"]) {
      auto it = snap_sample.find(r["user_id"].get<std::string>());
      if (it == snap_sample.end()) continue;
      ++rows;
      values += it->second.values_size();
      bad += CountDisagreements(names, it->second.values(), r, &example);
    }
    // DuckDB's rows of a join sample against ours, by label id.
    auto compare_labels =
        [&](const nlohmann::json& theirs,
            const std::map<int64_t, v1::JoinedRow>& ours,
            const google::protobuf::RepeatedPtrField<std::string>& columns) {
          for (const auto& r : theirs) {
            const nlohmann::json& id = r["label_id"];
            const int64_t i = id.is_string() ? std::stoll(id.get<std::string>())
                                             : id.get<int64_t>();
            auto it = ours.find(i);
            if (it == ours.end()) continue;
            ++rows;
            values += it->second.values_size();
            bad +=
                CountDisagreements(columns, it->second.values(), r, &example);
          }
        };
    compare_labels(duck["join_sample"], join_sample, names);
    compare_labels(duck.value("service_sample", nlohmann::json::array()),
                   service_sample, service_names);
    missing = static_cast<int>(snap_sample.size() + join_sample.size() +
                               service_sample.size()) -
              rows;
    agreement = absl::StrCat(
        rows, " sample rows (", values, " values) compared: ", bad,
        " disagree, ", missing, " rows missing in DuckDB",
        duck["snapshot_rows"].get<int64_t>() == snap_rows
            ? ""
            : absl::StrCat("; DuckDB snapshot has ",
                           duck["snapshot_rows"].get<int64_t>(), " rows"),
        example.empty() ? "" : absl::StrCat(" (e.g. ", example, ")"));
  }

  std::printf("\n%-34s %10s %10s %14s\n", "question", "rawfeat s", "duckdb s",
              "rawfeat/duckdb");
  auto line = [](const char* what, double ours, double theirs) {
    std::printf("%-34s %10.2f %10.2f %14.2f\n", what, ours, theirs,
                theirs > 0 ? ours / theirs : 0.0);
  };
  line("snapshot, all entities (1st run)", snap_secs[0], duck_snap);
  line("snapshot, all entities (2nd run)", snap_secs[1], duck_snap);
  line(absl::StrCat("point-in-time join, ", n_labels, " labels").c_str(),
       join_secs, duck_join);
  if (with_service) {
    line("service join, 3 parts", service_secs, duck_service);
    std::printf(
        "service join / slowest part alone: %.2f (parts alone: %.2f, %.2f, "
        "%.2f s)\n",
        service_secs / std::max({part_secs[0], part_secs[1], part_secs[2]}),
        part_secs[0], part_secs[1], part_secs[2]);
  }
  std::printf("DuckDB CSV load (not in the ratios): %.2f s\n", duck_load);
  std::printf("agreement: %s\n", agreement.c_str());
  std::printf("rawfeatd peak RSS %.0f MiB\n", rss / 1048576.0);
  return 0;
}

}  // namespace
}  // namespace rawfeat

int main(int argc, char** argv) {
  return rawfeat::bench::RunTool(argc, argv, rawfeat::Main);
}
