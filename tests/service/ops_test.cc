// Operations: /metrics scraped over HTTP after a known workload (counters
// equal what was sent, histogram counts equal calls), against a real server
// on 127.0.0.1:0.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/common/hash.h"
#include "server/common/time_util.h"
#include "server/storage/backup.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

using testing::Feature;
using testing::Order;
using testing::OrdersBatch;
using testing::TestServer;

constexpr int64_t kT0 = 1795478400LL * 1000000;  // 2026-11-24T00:00:00Z

// GET http://127.0.0.1:port/path; the body ("" on failure).
std::string HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request =
        absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if (::write(fd, request.data(), request.size()) ==
        static_cast<ssize_t>(request.size())) {
      char buf[65536];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof(buf))) > 0) response.append(buf, n);
    }
  }
  ::close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// Prometheus text format: "name{labels} value" -> value (labels as
// printed: prometheus-cpp sorts them by name).
std::map<std::string, double> Parse(const std::string& text) {
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    double v = 0;
    if (space == absl::string_view::npos ||
        !absl::SimpleAtod(line.substr(space + 1), &v)) {
      continue;
    }
    out[std::string(line.substr(0, space))] = v;
  }
  return out;
}

TEST(MetricsTest, ScrapedCountersEqualTheWorkload) {
  ServerOptions options;
  options.metrics_listen = "127.0.0.1:0";
  TestServer ts("", true, options);
  const std::string address = ts.server().metrics_address();
  ASSERT_FALSE(address.empty());
  const int port = std::stoi(address.substr(address.rfind(':') + 1));

  v1::ApplyDefinitionsRequest apply;
  auto* view = apply.mutable_definitions()->add_views();
  view->set_name("v");
  view->set_version(1);
  view->set_stream("orders");
  *view->add_features() = Feature("n", "count", "", "7d");
  ASSERT_TRUE(ts.client().ApplyDefinitions(apply).ok());

  // Ingest: 10 new, the same 10 again (duplicates), then with SKIP_ROW one
  // conflict, one invalid row and one new event; then a REJECT_BATCH batch
  // with one invalid row (nothing written).
  std::vector<v1::Event> ten;
  for (int i = 0; i < 10; ++i) {
    ten.push_back(Order("e" + std::to_string(i), "u" + std::to_string(i % 4),
                        kT0 + i, i));
  }
  const v1::IngestRequest first = OrdersBatch(ten);
  ASSERT_TRUE(ts.client().Ingest(first).ok());
  ASSERT_TRUE(ts.client().Ingest(first).ok());
  v1::Event invalid = Order("bad", "u1", kT0, 1);
  invalid.mutable_fields()->erase("category");  // required
  auto mixed = ts.client().Ingest(OrdersBatch(
      {Order("e3", "u3", kT0 + 3, 99), invalid, Order("e10", "u9", kT0, 1)},
      v1::SKIP_ROW));
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  ASSERT_EQ(mixed->accepted(), 1);
  ASSERT_EQ(mixed->rejected_size(), 2);
  EXPECT_FALSE(ts.client()
                   .Ingest(OrdersBatch({invalid, Order("e11", "u1", kT0, 1)}))
                   .ok());

  // Lookups: 4 that answer (1+2+3+1 entities), 2 of an unknown view.
  int entities = 0;
  for (int n : {1, 2, 3, 1}) {
    v1::GetFeaturesRequest get;
    get.set_view("v");
    for (int i = 0; i < n; ++i) get.add_entities("u" + std::to_string(i));
    entities += n;
    ASSERT_TRUE(ts.client().GetFeatures(get).ok());
  }
  for (int i = 0; i < 2; ++i) {
    v1::GetFeaturesRequest get;
    get.set_view("nope");
    get.add_entities("u1");
    entities += 1;
    EXPECT_EQ(ts.client().GetFeatures(get).status().code(),
              absl::StatusCode::kNotFound);
  }
  // A snapshot (5 entities: u0..u3, u9) and a join of 3 labels.
  v1::SnapshotRequest snap;
  snap.set_view("v");
  *snap.mutable_as_of() = MicrosToTimestamp(kT0 + 86400000000LL);
  ASSERT_TRUE(ts.client()
                  .Snapshot(snap, [](const v1::SnapshotChunk&) { return true; })
                  .ok());
  v1::JoinFeaturesRequest join;
  join.set_view("v");
  for (const char* e : {"u1", "u2", "zz"}) {
    auto* row = join.add_rows();
    row->set_entity(e);
    *row->mutable_time() = MicrosToTimestamp(kT0 + 100);
  }
  ASSERT_TRUE(ts.client()
                  .JoinFeatures(
                      join, [](v1::JoinFeaturesRequest*) { return false; },
                      [](const v1::JoinFeaturesResponse&) { return true; })
                  .ok());

  auto m = Parse(HttpGet(port, "/metrics"));
  ASSERT_FALSE(m.empty());
  auto rpc = [&](const char* name, const char* method, const char* code) {
    return m[absl::StrCat(name, "{code=\"", code, "\",method=\"", method,
                          "\"}")];
  };
  EXPECT_EQ(rpc("rawfeat_requests_total", "Ingest", "OK"), 3);
  EXPECT_EQ(rpc("rawfeat_requests_total", "Ingest", "INVALID_ARGUMENT"), 1);
  EXPECT_EQ(rpc("rawfeat_requests_total", "ApplyDefinitions", "OK"), 2);
  EXPECT_EQ(rpc("rawfeat_requests_total", "GetFeatures", "OK"), 4);
  EXPECT_EQ(rpc("rawfeat_requests_total", "GetFeatures", "NOT_FOUND"), 2);
  EXPECT_EQ(rpc("rawfeat_requests_total", "Snapshot", "OK"), 1);
  EXPECT_EQ(rpc("rawfeat_requests_total", "JoinFeatures", "OK"), 1);
  // Histogram counts equal call counts, and every call is in +Inf.
  EXPECT_EQ(rpc("rawfeat_request_seconds_count", "GetFeatures", "OK"), 4);
  EXPECT_EQ(rpc("rawfeat_request_seconds_count", "GetFeatures", "NOT_FOUND"),
            2);
  EXPECT_EQ(m["rawfeat_request_seconds_bucket{code=\"OK\",method=\"Ingest\","
              "le=\"+Inf\"}"],
            3);
  EXPECT_EQ(m["rawfeat_ingest_events_total{stream=\"orders\"}"], 11);
  EXPECT_EQ(m["rawfeat_ingest_duplicates_total{stream=\"orders\"}"], 10);
  EXPECT_EQ(m["rawfeat_ingest_conflicts_total{stream=\"orders\"}"], 1);
  EXPECT_EQ(m["rawfeat_ingest_rejected_total{kind=\"row\",stream=\"orders\"}"],
            2);
  EXPECT_EQ(
      m["rawfeat_ingest_rejected_total{kind=\"batch\",stream=\"orders\"}"], 1);
  const double bytes = 2.0 * first.ByteSizeLong();  // and two more requests
  EXPECT_GT(m["rawfeat_ingest_bytes_total{stream=\"orders\"}"], bytes);
  EXPECT_EQ(m["rawfeat_lookup_entities_count"], 6);
  EXPECT_EQ(m["rawfeat_lookup_entities_sum"], entities);
  EXPECT_EQ(m["rawfeat_rows_sent_total{method=\"Snapshot\"}"], 5);
  EXPECT_EQ(m["rawfeat_rows_sent_total{method=\"JoinFeatures\"}"], 3);
  EXPECT_EQ(m["rawfeat_watermark"], 11);
  EXPECT_EQ(m["rawfeat_open_calls{method=\"GetFeatures\"}"], 0);
  EXPECT_GT(m["process_resident_memory_bytes"], 1e6);
  EXPECT_GT(m["process_open_fds"], 3);
  EXPECT_GT(m["rocksdb_memtable_bytes"], 0);
  EXPECT_EQ(m.count("rocksdb_block_cache_hits_total"), 1u);
}

// An open streaming call shows in GetStatus (rawfeat status) and in
// /metrics, and leaves both when it ends.
TEST(MetricsTest, OpenCallsUptimeAndTheEndpointAreInTheStatus) {
  ServerOptions options;
  options.metrics_listen = "127.0.0.1:0";
  TestServer ts("", true, options);
  const std::string address = ts.server().metrics_address();
  const int port = std::stoi(address.substr(address.rfind(':') + 1));
  v1::IngestRequest req;
  req.set_stream("orders");
  for (int i = 0; i < 300; ++i) {
    *req.add_events() = Order("e" + std::to_string(i), "u", kT0 + i, i, 1,
                              std::string(2000, 'c'));
  }
  ASSERT_TRUE(ts.client().Ingest(req).ok());
  // ~600 KB to replay through a 64 KiB window: the call stays open.
  auto stub = testing::SmallWindowStub(ts.address());
  grpc::ClientContext ctx;
  v1::ReadEventsRequest read;
  read.set_stream("orders");
  auto reader = stub->ReadEvents(&ctx, read);
  reader->WaitForInitialMetadata();

  auto open_of = [](const v1::GetStatusResponse& st, const std::string& m) {
    for (const auto& c : st.open_calls()) {
      if (c.method() == m) return c.open();
    }
    return -1;
  };
  auto st = ts.client().GetStatus();
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->metrics_address(), address);
  EXPECT_GE(st->uptime_seconds(), 0);
  EXPECT_EQ(st->open_calls_size(), 4);
  EXPECT_EQ(open_of(*st, "ReadEvents"), 1);
  EXPECT_EQ(open_of(*st, "Snapshot"), 0);
  auto m = Parse(HttpGet(port, "/metrics"));
  EXPECT_EQ(m["rawfeat_open_calls{method=\"ReadEvents\"}"], 1);

  ctx.TryCancel();
  v1::ReadEventsResponse chunk;
  while (reader->Read(&chunk)) {
  }
  reader->Finish();
  // The server notices the cancel on its own thread: wait for the slot.
  for (int i = 0; i < 600 && open_of(*ts.client().GetStatus(), "ReadEvents");
       ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(open_of(*ts.client().GetStatus(), "ReadEvents"), 0);
}

TEST(MetricsTest, OffByDefaultAndABusyPortFailsTheStart) {
  TestServer plain;
  EXPECT_EQ(plain.server().metrics_address(), "");
  ServerOptions options;
  options.metrics_listen = "127.0.0.1:0";
  TestServer first("", false, options);
  const std::string taken = first.server().metrics_address();
  testing::TempDir dir;
  options.listen = "127.0.0.1:0";
  options.data_dir = dir.Sub("data");
  options.metrics_listen = taken;
  auto second = Server::Start(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("--metrics_listen"),
            std::string::npos)
      << second.status();
}

// Every event of `stream` visible at `watermark` (0 = latest), canonical.
std::vector<std::string> ReadAll(Client& client, uint64_t watermark) {
  v1::ReadEventsRequest req;
  req.set_stream("orders");
  req.set_watermark(watermark);
  std::vector<std::string> out;
  absl::Status s = client.ReadEvents(req, [&](const auto& chunk) {
    for (const auto& e : chunk.events()) out.push_back(testing::Canonical(e));
    return true;
  });
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

// A backup taken while ingest goes on holds exactly the events up to its
// watermark; a second backup into the same directory copies only what is
// new; the restored server answers as the source did at that watermark,
// goes on from it, and survives a restart.
TEST(BackupTest, ARestoredServerHoldsExactlyTheEventsUpToItsWatermark) {
  testing::TempDir dir;
  ServerOptions options;
  // Table files early (the hash memtables take 8 MiB of buckets first).
  options.store.write_buffer_bytes = 12 << 20;
  TestServer source("", true, options);
  auto batch = [](int b) {
    std::vector<v1::Event> events;
    for (int i = 0; i < 200; ++i) {
      events.push_back(Order(absl::StrCat("b", b, "-", i),
                             absl::StrCat("u", i % 37), kT0 + b * 1000 + i, i,
                             1, std::string(1000, 'a' + b % 26)));
    }
    return OrdersBatch(std::move(events));
  };
  for (int b = 0; b < 60; ++b)
    ASSERT_TRUE(source.client().Ingest(batch(b)).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    Client client(source.address());
    for (int b = 60; b < 400 && !stop; ++b) {
      if (client.Ingest(batch(b)).ok()) ++written;
    }
  });
  // The backups start while the writer is at it (bounded wait).
  for (int i = 0; i < 600 && written < 5; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const std::string root = dir.Sub("backups");
  auto first = source.client().Backup(root);
  auto second = source.client().Backup(root);
  stop = true;
  writer.join();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GE(first->watermark(), 60u * 200);
  EXPECT_GE(second->watermark(), first->watermark());
  EXPECT_GT(second->files_reused(), 0) << "no table file was reused";
  EXPECT_EQ(first->backup_dir(),
            absl::StrCat(root, "/backup-", first->watermark()));
  const std::vector<std::string> want =
      ReadAll(source.client(), first->watermark());
  ASSERT_EQ(want.size(), first->watermark());

  {
    ServerOptions restore;
    restore.restore_from = first->backup_dir();
    TestServer restored(dir.Sub("restored"), false, restore);
    auto st = restored.client().GetStatus();
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->watermark(), first->watermark());
    EXPECT_EQ(ReadAll(restored.client(), 0), want);
    // It goes on from the backup's watermark.
    auto more =
        restored.client().Ingest(OrdersBatch({Order("after", "u1", kT0, 1)}));
    ASSERT_TRUE(more.ok()) << more.status();
    EXPECT_EQ(more->watermark(), first->watermark() + 1);
  }
  // A restart of the restored server (without --restore_from) keeps it.
  TestServer again(dir.Sub("restored"), false);
  std::vector<std::string> after = ReadAll(again.client(), 0);
  ASSERT_EQ(after.size(), want.size() + 1);
  after.pop_back();
  EXPECT_EQ(after, want);
  // The root's newest backup is the second.
  TestServer newest(dir.Sub("newest"), false, [&] {
    ServerOptions o;
    o.restore_from = root;
    return o;
  }());
  EXPECT_EQ(newest.client().GetStatus()->watermark(), second->watermark());
}

TEST(BackupTest, BadTargetsFailClearlyAndTheServerServes) {
  testing::TempDir dir;
  TestServer ts;
  ASSERT_TRUE(
      ts.client().Ingest(OrdersBatch({Order("e1", "u1", kT0, 1)})).ok());
  const std::string foreign = dir.Sub("foreign");
  std::filesystem::create_directories(foreign);
  { std::ofstream(foreign + "/notes.txt") << "mine"; }
  auto r = ts.client().Backup(foreign);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("not a rawfeat backup directory"),
            std::string::npos)
      << r.status();
  r = ts.client().Backup("relative/dir");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  // Another store's backups are not mixed into this root.
  TestServer other;
  auto mine = ts.client().Backup(dir.Sub("root"));
  ASSERT_TRUE(mine.ok()) << mine.status();
  r = other.client().Backup(dir.Sub("root"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  // Restoring into a data dir that is not empty is refused.
  ServerOptions restore;
  restore.restore_from = mine->backup_dir();
  restore.data_dir = foreign;
  restore.listen = "127.0.0.1:0";
  auto start = Server::Start(restore);
  EXPECT_EQ(start.status().code(), absl::StatusCode::kFailedPrecondition);
  // A backup that lost a table file fails the restore with DATA_LOSS and
  // leaves nothing behind.
  int removed = 0;
  for (const auto& f :
       std::filesystem::directory_iterator(dir.Sub("root") + "/shared")) {
    removed += std::filesystem::remove(f.path()) ? 1 : 0;
  }
  ASSERT_GT(removed, 0) << "the backup has no table file";
  const std::string fresh = dir.Sub("fresh");
  auto restored = RestoreBackup(mine->backup_dir(), fresh);
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kDataLoss)
      << restored.status();
  EXPECT_FALSE(std::filesystem::exists(fresh));
  EXPECT_FALSE(std::filesystem::exists(fresh + ".restoring"));
  EXPECT_TRUE(ts.client().GetStatus().ok());
}

// The digest and count of a stream's replay at `watermark` (a million
// events are compared without holding them twice).
std::pair<std::string, uint64_t> ReplayDigest(Client& client,
                                              uint64_t watermark) {
  v1::ReadEventsRequest req;
  req.set_stream("orders");
  req.set_watermark(watermark);
  std::string rolling;
  uint64_t n = 0;
  absl::Status s = client.ReadEvents(req, [&](const auto& chunk) {
    for (const auto& e : chunk.events()) {
      const Sha256Digest d = Sha256(rolling + testing::Canonical(e));
      rolling.assign(reinterpret_cast<const char*>(d.data()), d.size());
      ++n;
    }
    return true;
  });
  EXPECT_TRUE(s.ok()) << s;
  return {HexEncode(rolling), n};
}

// A store of a million events backs up and restores event for event, and
// the restored server survives a restart.
TEST(BackupTest, AMillionEventStoreRestoresEventForEvent) {
  testing::TempDir dir;
  ServerOptions options;
  options.store.sync = false;  // loading only
  TestServer source(dir.Sub("source"), true, options);
  constexpr int kEvents = 1000000, kBatch = 5000;
  int next = 0;
  auto sent = source.client().IngestStream([&](v1::IngestRequest* req) {
    if (next >= kEvents) return false;
    req->set_stream("orders");
    for (int i = 0; i < kBatch; ++i, ++next) {
      *req->add_events() =
          Order(absl::StrCat("m", next), absl::StrCat("u", next % 10007),
                kT0 - static_cast<int64_t>(next) * 997, next * 0.5);
    }
    return true;
  });
  ASSERT_TRUE(sent.ok()) << sent.status();
  ASSERT_EQ(sent->accepted(), kEvents);
  auto backup = source.client().Backup(dir.Sub("backups"));
  ASSERT_TRUE(backup.ok()) << backup.status();
  EXPECT_EQ(backup->watermark(), static_cast<uint64_t>(kEvents));
  const auto want = ReplayDigest(source.client(), backup->watermark());
  EXPECT_EQ(want.second, static_cast<uint64_t>(kEvents));
  {
    ServerOptions restore;
    restore.restore_from = backup->backup_dir();
    TestServer restored(dir.Sub("restored"), false, restore);
    EXPECT_EQ(ReplayDigest(restored.client(), 0), want);
  }
  TestServer again(dir.Sub("restored"), false);
  EXPECT_EQ(again.client().GetStatus()->watermark(), backup->watermark());
  EXPECT_EQ(ReplayDigest(again.client(), 0), want);
}

// A backup into a disk that fills up fails with RESOURCE_EXHAUSTED, leaves
// no backup (nor half a file) behind, and the server serves and ingests.
// Needs the right to mount a tmpfs; skipped with the reason otherwise.
TEST(BackupTest, AFullDiskFailsTheBackupAndTheServerGoesOn) {
  testing::TempDir dir;
  const std::string mnt = dir.Sub("mnt");
  testing::Tmpfs tmpfs(mnt, "1m");
  if (!tmpfs.mounted()) GTEST_SKIP() << tmpfs.why();
  TestServer ts;
  // ~3 MB that does not compress.
  std::mt19937_64 rng(3);
  std::vector<v1::Event> events;
  for (int i = 0; i < 3000; ++i) {
    std::string noise(1000, ' ');
    for (char& c : noise) c = static_cast<char>('a' + rng() % 26);
    events.push_back(Order(absl::StrCat("e", i), absl::StrCat("u", i % 7),
                           kT0 + i, i, 1, noise));
  }
  ASSERT_TRUE(ts.client().Ingest(OrdersBatch(std::move(events))).ok());
  auto r = ts.client().Backup(mnt + "/backups");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
      << r.status();
  EXPECT_NE(r.status().message().find("disk full"), std::string::npos)
      << r.status();
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(mnt + "/backups")) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(entry.is_directory() || name == "RAWFEAT_BACKUPS")
        << "left behind: " << entry.path();
  }
  EXPECT_TRUE(ts.client().GetStatus().ok());
  EXPECT_TRUE(
      ts.client().Ingest(OrdersBatch({Order("after", "u1", kT0, 1)})).ok());
}

// An I/O error other than a full disk (a file system gone read-only under
// the backup directory) fails the backup with UNAVAILABLE naming the error;
// the earlier backup there still restores, and the server goes on.
TEST(BackupTest, AnIoErrorFailsTheBackupAndEarlierBackupsStayUsable) {
  testing::TempDir dir;
  const std::string mnt = dir.Sub("mnt");
  testing::Tmpfs tmpfs(mnt, "64m");
  if (!tmpfs.mounted()) GTEST_SKIP() << tmpfs.why();
  TestServer ts;
  ASSERT_TRUE(
      ts.client().Ingest(OrdersBatch({Order("e1", "u1", kT0, 1)})).ok());
  auto first = ts.client().Backup(mnt + "/backups");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(
      ts.client().Ingest(OrdersBatch({Order("e2", "u2", kT0, 2)})).ok());
  ASSERT_EQ(
      ::mount(nullptr, mnt.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr),
      0)
      << std::strerror(errno);
  auto r = ts.client().Backup(mnt + "/backups");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_NE(r.status().message().find("Read-only file system"),
            std::string::npos)
      << r.status();
  EXPECT_TRUE(
      ts.client().Ingest(OrdersBatch({Order("e3", "u3", kT0, 3)})).ok());
  ServerOptions restore;
  restore.restore_from = mnt + "/backups";
  TestServer restored(dir.Sub("restored"), false, restore);
  EXPECT_EQ(restored.client().GetStatus()->watermark(), first->watermark());
  EXPECT_EQ(ReadAll(restored.client(), 0).size(), 1u);
  ASSERT_EQ(::mount(nullptr, mnt.c_str(), nullptr, MS_REMOUNT, nullptr), 0);
}

}  // namespace
}  // namespace rawfeat
