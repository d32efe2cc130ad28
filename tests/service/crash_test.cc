// Crash safety: rawfeatd runs as a child process and is killed with SIGKILL
// while writers ingest; after a restart every acknowledged event must be
// present exactly once, and seqs must have no gaps.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "client/local_server.h"
#include "gtest/gtest.h"
#include "server/common/hash.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

constexpr int64_t kT0 = 1795478400LL * 1000000;

// Writes the orders stream into DIR/schemas; returns that folder.
std::string WriteSchemas(const testing::TempDir& dir) {
  const std::string schemas = dir.Sub("schemas");
  mkdir(schemas.c_str(), 0755);
  std::ofstream out(schemas + "/orders.textproto");
  out << "streams { name: 'orders' entity_field: 'user_id' "
         "time_field: 'order_time' "
         "fields { name: 'amount' type: DOUBLE required: true } "
         "fields { name: 'quantity' type: INT64 required: true } "
         "fields { name: 'category' type: STRING required: true } "
         "fields { name: 'coupon' type: STRING } "
         "fields { name: 'is_gift' type: BOOL } }";
  return schemas;
}

// Events of `entity` in the whole-stream replay (the log) and in the
// entity's own replay (its events), which must agree.
std::pair<size_t, size_t> Replayed(Client& client, const std::string& entity) {
  size_t in_log = 0, own = 0;
  v1::ReadEventsRequest req;
  req.set_stream("orders");
  EXPECT_TRUE(testing::ForEachEvent(client, req, [&](const v1::Event& e) {
                in_log += e.entity() == entity ? 1 : 0;
                return true;
              }).ok());
  req.set_entity(entity);
  EXPECT_TRUE(client
                  .ReadEvents(req,
                              [&](const auto& chunk) {
                                own += chunk.events_size();
                                return true;
                              })
                  .ok());
  return {in_log, own};
}

// SIGKILLs rawfeatd (started with `flags` besides the schemas) kRounds
// times while three writers ingest, then checks every acked event is
// stored exactly once, seqs have no gap, and each entity's own replay
// (its events: sealed blocks and events not sealed yet) holds exactly
// what the log holds of it.
void SigkillWhileIngesting(const std::vector<std::string>& flags) {
  testing::TempDir dir;
  const std::string schemas = WriteSchemas(dir);
  const std::string data = dir.Sub("data");

  std::mutex mu;
  std::map<std::string, v1::IngestRequest> acked;  // first id -> batch
  std::atomic<int> next_batch{0};
  constexpr int kRounds = 4;
  constexpr int kAcksBeforeKill = 15;

  std::vector<std::string> all_flags = flags;
  all_flags.push_back("--schemas=" + schemas);
  for (int round = 0; round < kRounds; ++round) {
    LocalServer child(RAWFEATD_PATH, data, dir.path(), all_flags);
    ASSERT_TRUE(child.ok()) << "rawfeatd did not start";
    std::atomic<int> acks{0};
    std::atomic<bool> stop{false};
    std::atomic<int> running{3};
    std::vector<std::thread> writers;
    for (int w = 0; w < 3; ++w) {
      writers.emplace_back([&] {
        ClientOptions co;
        co.timeout = std::chrono::seconds(10);
        Client client(child.address(), co);
        while (!stop) {
          const int b = next_batch++;
          v1::IngestRequest req;
          req.set_stream("orders");
          for (int i = 0; i < 200; ++i) {
            // Half with ids, half with content-derived ids.
            *req.add_events() = testing::Order(
                i % 2 ? "b" + std::to_string(b) + "-" + std::to_string(i) : "",
                "u" + std::to_string(i % 17), kT0 + b * 1000 + i, b + i * 0.5);
          }
          auto r = client.Ingest(req);
          if (!r.ok()) break;  // the server is gone
          EXPECT_EQ(r->accepted(), 200);
          std::lock_guard<std::mutex> l(mu);
          acked["b" + std::to_string(b)] = req;
          ++acks;
        }
        --running;
      });
    }
    // Until enough acks, or every writer failed (then the test fails below).
    while (acks < kAcksBeforeKill && running > 0) usleep(1000);
    EXPECT_GE(acks.load(), kAcksBeforeKill) << "writers failed before the kill";
    child.Kill();  // mid-stream: writers are still sending
    stop = true;
    for (auto& t : writers) t.join();
  }

  LocalServer child(RAWFEATD_PATH, data, dir.path(), all_flags);
  ASSERT_TRUE(child.ok());
  Client client(child.address());
  for (int u = 0; u < 17; ++u) {
    const auto [in_log, own] = Replayed(client, "u" + std::to_string(u));
    EXPECT_GT(own, 0u);
    EXPECT_EQ(in_log, own) << "u" << u;
  }
  std::map<std::string, int> seen;
  uint64_t expect_seq = 1;
  v1::ReadEventsRequest req;
  req.set_stream("orders");
  ASSERT_TRUE(testing::ForEachEvent(client, req, [&](const v1::Event& e) {
                ++seen[e.event_id()];
                EXPECT_EQ(e.seq(), expect_seq++);
                return true;
              }).ok());
  size_t acked_events = 0;
  for (const auto& [name, batch] : acked) {
    acked_events += batch.events_size();
    // Re-sending an acknowledged batch changes nothing: every event is
    // already there, exactly once.
    auto r = client.Ingest(batch);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->accepted(), 0) << name;
    EXPECT_EQ(r->duplicates(), 200) << name;
    for (const auto& e : batch.events()) {
      if (!e.event_id().empty()) {
        EXPECT_EQ(seen[e.event_id()], 1) << e.event_id();
      }
    }
  }
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << id;
  EXPECT_GE(seen.size(), acked_events);
  EXPECT_GE(acked.size(), static_cast<size_t>(kRounds * kAcksBeforeKill));
  // A clean stop on SIGTERM.
  const int status = child.Terminate();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(CrashTest, AckedEventsSurviveSigkillExactlyOnce) {
  SigkillWhileIngesting({});
}

// Sealing as often as it can (every entity with an unsealed event, each
// time 16 arrive), so the kills land during sealing too: no event is lost
// or doubled by a seal cut short, and no block is torn.
TEST(CrashTest, AKillDuringSealingLeavesEveryEventOnce) {
  SigkillWhileIngesting({"--seal_min_events=1"});
}

// Every stored event, canonical: the whole stream's replay (seq order)
// and each entity's own (its blocks and head, by time); as counts and a
// digest.
std::string AllEvents(Client& client) {
  std::string all;
  size_t n = 0;
  auto take = [&](const v1::Event& e) {
    all += testing::Canonical(e);
    ++n;
    return true;
  };
  v1::ReadEventsRequest req;
  req.set_stream("orders");
  EXPECT_TRUE(testing::ForEachEvent(client, req, take).ok());
  const size_t in_log = n;
  for (int u = 0; u < 17; ++u) {
    req.set_entity("u" + std::to_string(u));
    EXPECT_TRUE(testing::ForEachEvent(client, req, take).ok());
  }
  return std::to_string(in_log) + " in the log, " +
         std::to_string(n - in_log) + " by entity, sha256 " +
         DigestHex(Sha256(all));
}

// Unsealed events once the sealer has sealed them all (bounded wait).
uint64_t WaitSealed(Client& client) {
  uint64_t unsealed = 0;
  for (int i = 0; i < 600; ++i) {
    auto st = client.GetStatus();
    if (!st.ok()) return ~0ULL;
    unsealed = st->unsealed_events();
    if (unsealed == 0) break;
    usleep(100 * 1000);
  }
  return unsealed;
}

// Seals skip the write-ahead log: a SIGKILL loses the blocks (and the
// "unsealed_from" marker) written since the events family last flushed,
// here all of them, including blocks re-cut for late events. The next start
// finds those events unsealed in the log, reads the same, and seals them
// again; a clean stop keeps what was sealed.
TEST(CrashTest, SealsLostInAKillAreRedoneFromTheLog) {
  testing::TempDir dir;
  const std::string schemas = WriteSchemas(dir);
  const std::string data = dir.Sub("data");
  const std::vector<std::string> flags = {"--schemas=" + schemas,
                                          "--seal_min_events=1"};
  std::string before;
  uint64_t events = 0;
  {
    LocalServer child(RAWFEATD_PATH, data, dir.path(), flags);
    ASSERT_TRUE(child.ok()) << "rawfeatd did not start";
    Client client(child.address());
    // Three rounds, each sealed; the later ones reach back in time, so
    // their seals re-cut blocks the earlier ones wrote.
    for (int round = 0; round < 3; ++round) {
      v1::IngestRequest req;
      req.set_stream("orders");
      for (int i = 0; i < 600; ++i) {
        *req.add_events() = testing::Order(
            "r" + std::to_string(round) + "-" + std::to_string(i),
            "u" + std::to_string(i % 17),
            kT0 + (i * 7919 % 600) * 1000000LL - round * 250000000LL, i * 0.5);
      }
      auto r = client.Ingest(req);
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->accepted(), 600);
      ASSERT_EQ(WaitSealed(client), 0u);
    }
    auto st = client.GetStatus();
    ASSERT_TRUE(st.ok()) << st.status();
    events = st->watermark();
    ASSERT_EQ(events, 1800u);
    before = AllEvents(client);
    child.Kill();
  }
  {
    LocalServer child(RAWFEATD_PATH, data, dir.path(), flags);
    ASSERT_TRUE(child.ok()) << "rawfeatd did not restart";
    Client client(child.address());
    auto st = client.GetStatus();
    ASSERT_TRUE(st.ok()) << st.status();
    // Loaded from the log (as many as the kill lost, and no more).
    EXPECT_GT(st->unsealed_events(), 0u);
    EXPECT_LE(st->unsealed_events(), events);
    EXPECT_EQ(st->watermark(), events);
    EXPECT_EQ(AllEvents(client), before);
    ASSERT_EQ(WaitSealed(client), 0u);
    EXPECT_EQ(AllEvents(client), before);
    const int status = child.Terminate();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  LocalServer child(RAWFEATD_PATH, data, dir.path(), flags);
  ASSERT_TRUE(child.ok());
  Client client(child.address());
  // A clean stop flushed the seals: nothing is left to load.
  auto st = client.GetStatus();
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->unsealed_events(), 0u);
  EXPECT_EQ(AllEvents(client), before);
}

// Sealing folds a tiled day's new events into its tiles, in a durable
// write of its own, before it writes the blocks without the write-ahead
// log. A kill then loses the blocks but keeps the folded tiles: after the
// restart the events are unsealed again, beside tiles that already hold
// them. Every answer stays the same -- before the kill, after the restart,
// after the events are sealed again (and not folded twice), and on the
// same data read without tiles.
TEST(CrashTest, TilesFoldedBySealsAKillLostHoldEveryEventOnce) {
  testing::TempDir dir;
  const std::string schemas = WriteSchemas(dir);
  {
    std::ofstream out(schemas + "/views.textproto");
    out << "views { name: 'cv' version: 1 stream: 'orders' "
           "features { name: 'n' aggregation: 'count' window: 'lifetime' } "
           "features { name: 's' aggregation: 'sum' field: 'amount' "
           "window: 'lifetime' } "
           "features { name: 'sd' aggregation: 'stddev' field: 'amount' "
           "window: 'lifetime' } "
           "features { name: 'q7' aggregation: 'sum' field: 'quantity' "
           "window: '7d' } "
           "features { name: 'last' aggregation: 'last' field: 'amount' "
           "window: 'lifetime' } }";
  }
  const std::string data = dir.Sub("data");
  const std::vector<std::string> flags = {
      "--schemas=" + schemas, "--seal_min_events=1", "--tile_min_events=4",
      "--tile_sealed_days=false"};
  constexpr int64_t kDay = 86400LL * 1000000;
  const int64_t base = kT0 - 30 * kDay;  // days old enough to be tiled
  const std::vector<std::string> users = {"u0", "u1", "u2"};
  auto answers = [&](Client& client) {
    std::string all;
    for (int64_t as_of : {base + 8 * kDay, base + 5 * kDay + 1}) {
      v1::GetFeaturesRequest req;
      req.set_view("cv");
      for (const auto& u : users) req.add_entities(u);
      *req.mutable_as_of() = MicrosToTimestamp(as_of);
      auto r = client.GetFeatures(req);
      EXPECT_TRUE(r.ok()) << r.status();
      if (r.ok()) all += testing::Canonical(*r);
    }
    return all;
  };
  auto ingest = [&](Client& client, const std::string& tag, int per_day) {
    v1::IngestRequest req;
    req.set_stream("orders");
    int n = 0;
    for (int d = 0; d < 7; ++d) {
      for (int i = 0; i < per_day; ++i, ++n) {
        *req.add_events() = testing::Order(
            tag + std::to_string(n), users[n % users.size()],
            base + d * kDay + (n * 7919LL % 86400) * 1000000, 1e9 + n * 0.25,
            n % 5);
      }
    }
    auto r = client.Ingest(req);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->accepted(), n);
  };
  std::string before;
  uint64_t tiles = 0;
  {
    LocalServer child(RAWFEATD_PATH, data, dir.path(), flags);
    ASSERT_TRUE(child.ok()) << "rawfeatd did not start";
    Client client(child.address());
    ingest(client, "h", 30);
    ASSERT_EQ(WaitSealed(client), 0u);
    answers(client);  // the lookups ask for tiles of the heavy days
    for (int i = 0; i < 600; ++i) {
      auto st = client.GetStatus();
      ASSERT_TRUE(st.ok()) << st.status();
      tiles = st->tiles();
      if (tiles > 0 && st->tile_builds_pending() == 0) break;
      usleep(100 * 1000);
    }
    ASSERT_GT(tiles, 0u);
    // Late events into the tiled days, sealed (so folded into the tiles):
    // then the kill loses those seals.
    ingest(client, "late", 6);
    ASSERT_EQ(WaitSealed(client), 0u);
    before = answers(client);
    EXPECT_EQ(client.GetStatus()->tiles(), tiles);
    child.Kill();
  }
  {
    LocalServer child(RAWFEATD_PATH, data, dir.path(), flags);
    ASSERT_TRUE(child.ok()) << "rawfeatd did not restart";
    Client client(child.address());
    auto st = client.GetStatus();
    ASSERT_TRUE(st.ok()) << st.status();
    EXPECT_GT(st->unsealed_events(), 0u) << "the kill lost no seal";
    EXPECT_EQ(st->tiles(), tiles);
    EXPECT_EQ(answers(client), before);
    ASSERT_EQ(WaitSealed(client), 0u);
    EXPECT_EQ(answers(client), before);
    EXPECT_EQ(client.GetStatus()->tiles(), tiles);
    const int status = child.Terminate();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  std::vector<std::string> plain = flags;
  plain.push_back("--tiles=false");
  LocalServer child(RAWFEATD_PATH, data, dir.path(), plain);
  ASSERT_TRUE(child.ok());
  Client client(child.address());
  EXPECT_EQ(answers(client), before);
}

TEST(CrashTest, AnErasureKilledMidwayLeavesAllOrNothing) {
  testing::TempDir dir;
  const std::string schemas = WriteSchemas(dir);
  const std::string data = dir.Sub("data");
  constexpr int kBatches = 12, kPerBatch = 5000;
  constexpr size_t kHeavy = kBatches * kPerBatch;
  std::vector<v1::IngestRequest> heavy(kBatches);
  for (int b = 0; b < kBatches; ++b) {
    heavy[b].set_stream("orders");
    for (int i = 0; i < kPerBatch; ++i) {
      const int n = b * kPerBatch + i;
      *heavy[b].add_events() = testing::Order(
          n % 2 ? "h" + std::to_string(n) : "", "heavy", kT0 + n, n * 0.25);
    }
  }
  v1::IngestRequest light;
  light.set_stream("orders");
  for (int i = 0; i < 100; ++i) {
    *light.add_events() =
        testing::Order("l" + std::to_string(i), "light", kT0 + i, i);
  }
  std::mt19937 rng(11);
  int all = 0, nothing = 0;
  constexpr int kRounds = 5;
  for (int round = 0; round <= kRounds; ++round) {
    LocalServer child(RAWFEATD_PATH, data, dir.path(),
                      {"--schemas=" + schemas});
    ASSERT_TRUE(child.ok()) << "rawfeatd did not start";
    ClientOptions co;
    co.timeout = std::chrono::seconds(60);
    Client client(child.address(), co);
    // All or nothing: the heavy entity is whole or absent, in its own
    // events and in the log alike, and the stream's count agrees.
    const auto [in_log, own] = Replayed(client, "heavy");
    EXPECT_TRUE(own == 0 || own == kHeavy) << own << " events left";
    EXPECT_EQ(in_log, own);
    if (round > 0) (own == 0 ? all : nothing) += 1;
    auto st = client.GetStatus();
    ASSERT_TRUE(st.ok());
    ASSERT_EQ(st->streams_size(), 1);
    EXPECT_EQ(st->streams(0).events(), own + (round == 0 ? 0 : 100));
    // Its ids went with it (every event is new again), or all stayed.
    int64_t accepted = 0, duplicates = 0;
    for (const auto& batch : heavy) {
      auto r = client.Ingest(batch);
      ASSERT_TRUE(r.ok()) << r.status();
      accepted += r->accepted();
      duplicates += r->duplicates();
    }
    EXPECT_EQ(accepted, static_cast<int64_t>(kHeavy - own));
    EXPECT_EQ(duplicates, static_cast<int64_t>(own));
    if (round == 0) {
      ASSERT_TRUE(client.Ingest(light).ok());
    }
    if (round == kRounds) {
      // Uninterrupted, the erasure takes everything, and the rest stays.
      auto r = client.Erase("orders", "heavy");
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->events(), kHeavy);
      EXPECT_EQ(Replayed(client, "heavy"),
                std::make_pair(size_t{0}, size_t{0}));
      EXPECT_EQ(Replayed(client, "light"),
                std::make_pair(size_t{100}, size_t{100}));
      break;
    }
    std::thread eraser([&] { (void)client.Erase("orders", "heavy"); });
    usleep(static_cast<useconds_t>(rng() % 250000));
    child.Kill();
    eraser.join();
  }
  std::printf("erasures killed midway: %d took effect, %d did not\n", all,
              nothing);
}

}  // namespace
}  // namespace rawfeat
