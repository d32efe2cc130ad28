// Data directories written by earlier releases keep working. The fixture
// tests/fixtures/v1_datadir.tar.gz was written by the storage layout v1
// code (2026-12, commit "datadir fixture"), with the answers that code gave
// recorded beside it (v1_datadir.answers): every later server must open it
// and give the same answers, bit for bit, at the same watermarks.
//
// To regenerate (only ever for a new fixture of a new format, never to
// make this test pass; the v1 one was written at commit 8185941, the last
// server that wrote format 1):
//   RAWFEAT_WRITE_FIXTURE=/tmp/fx build/tests/rawfeat_service_tests
//     --gtest_also_run_disabled_tests --gtest_filter='*WriteV1Fixture*'
// (one command), then copy /tmp/fx/v1_datadir.{tar.gz,answers} here.

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "server/common/definitions_text.h"
#include "server/common/hash.h"
#include "server/common/time_util.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

using testing::Canonical;
using testing::TestServer;

constexpr int64_t kT0 = 1767225600LL * 1000000;  // 2026-01-01T00:00:00Z
constexpr int64_t kHour = 3600LL * 1000000;

constexpr char kClicks[] = R"(
streams {
  name: "clicks" entity_field: "user" time_field: "at"
  fields { name: "page" type: STRING required: true }
  fields { name: "ms" type: INT64 required: false }
}
views {
  name: "user_orders" version: 1 stream: "orders"
  features { name: "n_1h" aggregation: "count" window: "1h" }
  features { name: "spend_7d" aggregation: "sum" field: "amount" window: "7d" }
  features { name: "avg_30d" aggregation: "avg" field: "amount" window: "30d" }
  features { name: "max_30d" aggregation: "max" field: "amount" window: "30d" }
  features { name: "min_2d" aggregation: "min" field: "amount" window: "2d" }
  features { name: "items_30d" aggregation: "sum" field: "quantity" window: "30d" }
  features { name: "cats_30d" aggregation: "count_distinct" field: "category" window: "30d" }
  features { name: "last_cat" aggregation: "last" field: "category" window: "lifetime" }
  features { name: "recent" aggregation: "last_k" field: "amount" window: "7d" k: 3 }
  features { name: "first_amount" aggregation: "first" field: "amount" window: "lifetime" }
  features { name: "sd_30d" aggregation: "stddev" field: "amount" window: "30d" }
  features {
    name: "coupons_30d" aggregation: "count" window: "30d"
    filter { field: "coupon" op: "!=" values { string_value: "" } }
  }
}
views {
  name: "click_stats" version: 1 stream: "clicks"
  features { name: "n_1d" aggregation: "count" window: "1d" }
  features { name: "ms_7d" aggregation: "sum" field: "ms" window: "7d" }
  features { name: "pages" aggregation: "count_distinct" field: "page" window: "30d" }
}
)";
// The second schema version of clicks: an added optional field.
constexpr char kClicksV2[] = R"(
streams {
  name: "clicks" entity_field: "user" time_field: "at"
  fields { name: "page" type: STRING required: true }
  fields { name: "ms" type: INT64 required: false }
  fields { name: "dwell" type: DOUBLE required: false }
}
)";

v1::ApplyDefinitionsRequest Apply(const char* text) {
  auto defs = ParseDefinitionsText(text, "fixture");
  EXPECT_TRUE(defs.ok()) << defs.status();
  v1::ApplyDefinitionsRequest req;
  *req.mutable_definitions() = *defs;
  return req;
}

std::string Hash(const std::string& bytes) { return DigestHex(Sha256(bytes)); }

// Every answer the fixture records, by name: replays, lookups, snapshots
// and a join at two watermarks, each as the SHA-256 of its canonical bytes.
std::map<std::string, std::string> Answers(TestServer& s, uint64_t w_mid,
                                           uint64_t w_end) {
  std::map<std::string, std::string> out;
  for (uint64_t w : {w_mid, w_end}) {
    const std::string at = absl::StrCat("@", w == w_mid ? "mid" : "end");
    for (const char* stream : {"orders", "clicks"}) {
      for (const std::string entity : {"", "u1", "u7"}) {
        v1::ReadEventsRequest req;
        req.set_stream(stream);
        req.set_entity(entity);
        req.set_watermark(w);
        std::string all;
        EXPECT_TRUE(s.client()
                        .ReadEvents(req,
                                    [&](const v1::ReadEventsResponse& r) {
                                      all += Canonical(r);
                                      return true;
                                    })
                        .ok());
        out[absl::StrCat("replay ", stream, "/", entity, at)] = Hash(all);
      }
    }
    for (const char* view : {"user_orders", "click_stats"}) {
      for (int64_t as_of : {kT0 + 3 * kHour, kT0 + 10 * 24 * kHour + 7,
                            kT0 + 45 * 24 * kHour}) {
        v1::GetFeaturesRequest get;
        get.set_view(view);
        get.set_watermark(w);
        *get.mutable_as_of() = MicrosToTimestamp(as_of);
        for (int u = 0; u < 12; ++u) get.add_entities(absl::StrCat("u", u));
        auto got = s.client().GetFeatures(get);
        EXPECT_TRUE(got.ok()) << got.status();
        out[absl::StrCat("features ", view, " ", as_of, at)] =
            got.ok() ? Hash(Canonical(*got)) : got.status().ToString();

        v1::SnapshotRequest snap;
        snap.set_view(view);
        snap.set_watermark(w);
        *snap.mutable_as_of() = MicrosToTimestamp(as_of);
        std::string all;
        EXPECT_TRUE(s.client()
                        .Snapshot(snap,
                                  [&](const v1::SnapshotChunk& c) {
                                    all += Canonical(c);
                                    return true;
                                  })
                        .ok());
        out[absl::StrCat("snapshot ", view, " ", as_of, at)] = Hash(all);
      }
    }
    v1::JoinFeaturesRequest first;
    first.set_view("user_orders");
    first.set_watermark(w);
    for (int i = 0; i < 200; ++i) {
      auto* row = first.add_rows();
      row->set_entity(absl::StrCat("u", i % 15));
      *row->mutable_time() = MicrosToTimestamp(kT0 + i * 5 * kHour + i);
    }
    std::string all;
    EXPECT_TRUE(s.client()
                    .JoinFeatures(
                        first, [](v1::JoinFeaturesRequest*) { return false; },
                        [&](const v1::JoinFeaturesResponse& r) {
                          all += Canonical(r);
                          return true;
                        })
                    .ok());
    out[absl::StrCat("join user_orders", at)] = Hash(all);
  }
  auto erasures = s.client().ListErasures();
  EXPECT_TRUE(erasures.ok());
  if (erasures.ok()) {
    for (const auto& e : erasures->erasures()) {
      out[absl::StrCat("erasure ", e.stream(), " ", e.entity_sha256())] =
          absl::StrCat(e.events(), " events at watermark ", e.watermark());
    }
  }
  return out;
}

// What the fixture's history is: two streams (clicks evolves to a second
// schema version midway), late and duplicate events, tiles built by
// lookups of a heavy user, and one erased user.
void WriteHistory(TestServer& s, const std::string& backup_dir,
                  uint64_t* w_mid) {
  ASSERT_TRUE(s.client().ApplyDefinitions(Apply(kClicks)).ok());
  uint64_t rng = 12345;
  auto next = [&]() {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return rng >> 33;
  };
  auto batch_of = [&](int round, int n, bool v2) {
    v1::IngestRequest orders;
    v1::IngestRequest clicks;
    clicks.set_stream("clicks");
    for (int i = 0; i < n; ++i) {
      // u0 is heavy; later rounds reach back into earlier days (late).
      const int u = next() % 3 == 0 ? 0 : static_cast<int>(next() % 14);
      const int64_t t = kT0 + static_cast<int64_t>(next() % (40 * 24)) * kHour +
                        static_cast<int64_t>(next() % 3600) * 1000000;
      const std::string user = absl::StrCat("u", u);
      *orders.add_events() = testing::Order(
          absl::StrCat("o", round, "-", i), user, t,
          static_cast<double>(next() % 20000) / 100.0 + 1e6 * (u == 3),
          static_cast<int64_t>(next() % 5) + 1,
          std::vector<std::string>{"books", "games", "food"}[next() % 3],
          next() % 4 == 0 ? "SAVE10" : "");
      v1::Event* c = clicks.add_events();
      c->set_event_id(absl::StrCat("c", round, "-", i));
      c->set_entity(user);
      *c->mutable_event_time() = MicrosToTimestamp(t + 17);
      (*c->mutable_fields())["page"].set_string_value(
          absl::StrCat("/p", next() % 9));
      if (next() % 3 != 0) {
        (*c->mutable_fields())["ms"].set_int64_value(
            static_cast<int64_t>(next() % 100000) - 50);
      }
      if (v2 && next() % 2 == 0) {
        (*c->mutable_fields())["dwell"].set_double_value(
            static_cast<double>(next() % 1000) / 7.0);
      }
    }
    orders.set_stream("orders");
    return std::make_pair(orders, clicks);
  };
  for (int round = 0; round < 6; ++round) {
    if (round == 3) {
      ASSERT_TRUE(s.client().ApplyDefinitions(Apply(kClicksV2)).ok());
      *w_mid = s.client().GetStatus()->watermark();
      // A backup flushes the memtables: the first half is in table files,
      // the second only in the write-ahead log.
      ASSERT_TRUE(s.client().Backup(backup_dir).ok());
    }
    auto [orders, clicks] = batch_of(round, 250, round >= 3);
    ASSERT_TRUE(s.client().Ingest(orders).ok());
    ASSERT_TRUE(s.client().Ingest(clicks).ok());
    // Re-sent: duplicates, never stored twice.
    auto again = s.client().Ingest(orders);
    ASSERT_TRUE(again.ok());
    ASSERT_EQ(again->accepted(), 0);
    // Lookups of the heavy user build its day tiles.
    v1::GetFeaturesRequest get;
    get.set_view("user_orders");
    get.add_entities("u0");
    *get.mutable_as_of() = MicrosToTimestamp(kT0 + 41 * 24 * kHour);
    ASSERT_TRUE(s.client().GetFeatures(get).ok());
  }
  ASSERT_TRUE(s.client().Erase("orders", "u7").ok());
}

// Calls `take` with the stored orders events in seq order until it
// returns false.
void ForEachOrder(TestServer& s,
                  const std::function<bool(const v1::Event&)>& take) {
  v1::ReadEventsRequest req;
  req.set_stream("orders");
  EXPECT_TRUE(testing::ForEachEvent(s.client(), req, take).ok());
}

std::string FixturePath(const std::string& name) {
  return absl::StrCat(RAWFEAT_FIXTURES_DIR, "/", name);
}

TEST(DataDirCompatTest, DISABLED_WriteV1Fixture) {
  const char* out = std::getenv("RAWFEAT_WRITE_FIXTURE");
  ASSERT_NE(out, nullptr) << "set RAWFEAT_WRITE_FIXTURE to a new directory";
  const std::string dir = out;
  ASSERT_EQ(std::system(absl::StrCat("mkdir -p '", dir, "'").c_str()), 0);
  ServerOptions options;
  options.tile_min_events = 4;
  std::map<std::string, std::string> answers;
  uint64_t w_mid = 0, w_end = 0;
  {
    TestServer s(dir + "/data", true, options);
    WriteHistory(s, dir + "/backup", &w_mid);
    w_end = s.client().GetStatus()->watermark();
    ASSERT_GT(s.SettledTiles(), 0u);
    answers = Answers(s, w_mid, w_end);
  }
  std::ofstream f(dir + "/v1_datadir.answers");
  f << "watermarks " << w_mid << " " << w_end << "\n";
  for (const auto& [k, v] : answers) f << k << "\t" << v << "\n";
  f.close();
  // RocksDB's info logs are not part of the store.
  ASSERT_EQ(std::system(absl::StrCat("cd '", dir,
                                     "' && rm -f data/LOG data/LOG.old && "
                                     "tar -czf v1_datadir.tar.gz data")
                            .c_str()),
            0);
}

// The answers v1_datadir.answers records, and its two watermarks.
struct FixtureAnswers {
  uint64_t w_mid = 0, w_end = 0;
  std::map<std::string, std::string> want;
};

void ReadFixtureAnswers(FixtureAnswers* out) {
  std::ifstream f(FixturePath("v1_datadir.answers"));
  ASSERT_TRUE(f.good());
  std::string line;
  ASSERT_TRUE(std::getline(f, line));
  std::vector<std::string> w = absl::StrSplit(line, ' ');
  ASSERT_EQ(w.size(), 3u);
  out->w_mid = std::stoull(w[1]);
  out->w_end = std::stoull(w[2]);
  while (std::getline(f, line)) {
    std::vector<std::string> kv = absl::StrSplit(line, '\t');
    ASSERT_EQ(kv.size(), 2u) << line;
    out->want[kv[0]] = kv[1];
  }
  ASSERT_GT(out->want.size(), 30u);
}

// Unpacks the fixture's data dir as DIR/data.
void ExtractFixture(const testing::TempDir& dir) {
  ASSERT_EQ(std::system(absl::StrCat("rm -rf '", dir.Sub("data"), "' && tar -C '",
                                     dir.path(), "' -xzf '",
                                     FixturePath("v1_datadir.tar.gz"), "'")
                            .c_str()),
            0);
}

TEST(DataDirCompatTest, AV1DataDirOpensAndAnswersAsItDid) {
  FixtureAnswers fixture;
  ASSERT_NO_FATAL_FAILURE(ReadFixtureAnswers(&fixture));
  const uint64_t w_mid = fixture.w_mid, w_end = fixture.w_end;
  const std::map<std::string, std::string>& want = fixture.want;

  testing::TempDir dir;
  ASSERT_NO_FATAL_FAILURE(ExtractFixture(dir));
  TestServer s(dir.Sub("data"), false);
  auto status = s.client().GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->watermark(), w_end);
  EXPECT_EQ(Answers(s, w_mid, w_end), want);
  // Still writable: a new event gets the next seq, and the erased user's
  // events are accepted again as new.
  auto r = s.client().Ingest(testing::OrdersBatch(
      {testing::Order("new-1", "u7", kT0 + 5 * kHour, 3.5)}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->accepted(), 1);
  EXPECT_EQ(r->watermark(), w_end + 1);
  // And again after a restart.
  s.Restart();
  EXPECT_EQ(s.client().GetStatus()->watermark(), w_end + 1);
  EXPECT_EQ(Answers(s, w_mid, w_end).at("replay clicks/@end"),
            want.at("replay clicks/@end"));

  // The fixture's id records are in the older 48-byte form (seq, whole
  // hash, time); today's are shorter. Re-sent fixture events are found
  // duplicates, and one with changed content a conflict, the original kept.
  {
    v1::IngestRequest resend;
    resend.set_stream("orders");
    ForEachOrder(s, [&](const v1::Event& e) {
      *resend.add_events() = e;
      return resend.events_size() < 50;
    });
    ASSERT_EQ(resend.events_size(), 50);
    ASSERT_FALSE(resend.events(0).event_id().empty());
    auto dup = s.client().Ingest(resend);
    ASSERT_TRUE(dup.ok()) << dup.status();
    EXPECT_EQ(dup->accepted(), 0);
    EXPECT_EQ(dup->duplicates(), 50);
    v1::IngestRequest changed;
    changed.set_stream("orders");
    *changed.add_events() = resend.events(7);
    (*changed.mutable_events(0)->mutable_fields())["amount"].set_double_value(
        -1.25);
    auto conflict = s.client().Ingest(changed);
    ASSERT_FALSE(conflict.ok());
    EXPECT_EQ(conflict.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(conflict.status().message().find("different content"),
              std::string::npos)
        << conflict.status();
  }

  // The log now holds format-1 entries and format-2 group entries. An
  // entity with events in both is erased: it leaves both, and every other
  // event stays where it was, before and after a restart.
  auto replay = [&s]() {
    std::vector<std::pair<std::string, std::string>> events;  // entity, all
    ForEachOrder(s, [&](const v1::Event& e) {
      events.emplace_back(e.entity(), Canonical(e));
      return true;
    });
    return events;
  };
  const size_t v1_events = replay().size();
  ASSERT_GT(v1_events, 0u);
  std::vector<v1::Event> fresh;
  for (int i = 0; i < 40; ++i) {
    fresh.push_back(testing::Order(absl::StrCat("new-u5-", i),
                                   i % 2 ? "u5" : "u6", kT0 + i * kHour, i));
  }
  ASSERT_TRUE(s.client().Ingest(testing::OrdersBatch(fresh)).ok());
  auto before = replay();
  ASSERT_EQ(before.size(), v1_events + 40);
  const size_t u5 = std::count_if(before.begin(), before.end(),
                                  [](const auto& e) { return e.first == "u5"; });
  ASSERT_GT(u5, 20u);  // old ones and the 20 new ones
  auto erased = s.client().Erase("orders", "u5");
  ASSERT_TRUE(erased.ok()) << erased.status();
  EXPECT_EQ(erased->events(), u5);
  before.erase(std::remove_if(before.begin(), before.end(),
                              [](const auto& e) { return e.first == "u5"; }),
               before.end());
  EXPECT_EQ(replay(), before);
  s.Restart();
  EXPECT_EQ(replay(), before);
  auto again = s.client().Ingest(testing::OrdersBatch(fresh));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->accepted(), 20);  // the erased half is new again
  EXPECT_EQ(again->duplicates(), 20);
}

// Converting a v1 data dir is crash-safe wherever it stops. Each round
// unpacks the fixture afresh and starts rawfeatd on it as a child process
// (sealing every entity on each pass), which marks the store with today's
// format, loads the events v1 left unsealed from the log and seals them
// into blocks (deleting their v1 keys in the same atomic writes); a SIGKILL
// lands after a different delay each round: while RocksDB opens, while
// the log loads, while serving, during or after the first sealing pass.
// A server started on what is left answers every recorded question as the
// v1 code did, and keeps what it converts across a further restart.
TEST(DataDirCompatTest, AKillDuringConversionFromV1LosesNothing) {
  FixtureAnswers fixture;
  ASSERT_NO_FATAL_FAILURE(ReadFixtureAnswers(&fixture));
  testing::TempDir dir;
  for (const int delay_ms : {0, 3, 10, 30, 60, 120, 250, 450, 530, 800}) {
    SCOPED_TRACE(absl::StrCat("killed after ", delay_ms, " ms"));
    ASSERT_NO_FATAL_FAILURE(ExtractFixture(dir));
    std::vector<std::string> args = {
        RAWFEATD_PATH, "--listen=127.0.0.1:0", "--data_dir=" + dir.Sub("data"),
        "--port_file=" + dir.Sub("port"), "--seal_min_events=1"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives the test
      execv(argv[0], argv.data());
      _exit(127);
    }
    usleep(delay_ms * 1000);
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    // Killed, or (at no delay) not even started: never a failed start.
    ASSERT_TRUE(WIFSIGNALED(status)) << "rawfeatd exited with " << status;

    TestServer s(dir.Sub("data"), false);
    auto st = s.client().GetStatus();
    ASSERT_TRUE(st.ok()) << st.status();
    // What the kill left to seal (this start loads it from the log).
    std::printf("killed after %3d ms: %llu events left unsealed\n", delay_ms,
                static_cast<unsigned long long>(st->unsealed_events()));
    EXPECT_EQ(st->watermark(), fixture.w_end);
    EXPECT_EQ(Answers(s, fixture.w_mid, fixture.w_end), fixture.want);
    s.Restart();
    EXPECT_EQ(Answers(s, fixture.w_mid, fixture.w_end), fixture.want);
  }
}

}  // namespace
}  // namespace rawfeat
