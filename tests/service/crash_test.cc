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
#include <set>
#include <thread>

#include "client/local_server.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

constexpr int64_t kT0 = 1795478400LL * 1000000;

TEST(CrashTest, AckedEventsSurviveSigkillExactlyOnce) {
  testing::TempDir dir;
  const std::string schemas = dir.Sub("schemas");
  mkdir(schemas.c_str(), 0755);
  {
    std::ofstream out(schemas + "/orders.textproto");
    out << "streams { name: 'orders' entity_field: 'user_id' "
           "time_field: 'order_time' "
           "fields { name: 'amount' type: DOUBLE required: true } "
           "fields { name: 'quantity' type: INT64 required: true } "
           "fields { name: 'category' type: STRING required: true } "
           "fields { name: 'coupon' type: STRING } "
           "fields { name: 'is_gift' type: BOOL } }";
  }
  const std::string data = dir.Sub("data");

  std::mutex mu;
  std::map<std::string, v1::IngestRequest> acked;  // first id -> batch
  std::atomic<int> next_batch{0};
  constexpr int kRounds = 4;
  constexpr int kAcksBeforeKill = 15;

  for (int round = 0; round < kRounds; ++round) {
    LocalServer child(RAWFEATD_PATH, data, dir.path(),
                      {"--schemas=" + schemas});
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

  LocalServer child(RAWFEATD_PATH, data, dir.path(), {"--schemas=" + schemas});
  ASSERT_TRUE(child.ok());
  Client client(child.address());
  std::map<std::string, int> seen;
  uint64_t expect_seq = 1;
  v1::ReadEventsRequest req;
  req.set_stream("orders");
  ASSERT_TRUE(client
                  .ReadEvents(req,
                              [&](const auto& chunk) {
                                for (const auto& e : chunk.events()) {
                                  ++seen[e.event_id()];
                                  EXPECT_EQ(e.seq(), expect_seq++);
                                }
                                return true;
                              })
                  .ok());
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

}  // namespace
}  // namespace rawfeat
