#ifndef RAWFEAT_TESTS_TEST_UTIL_H_
#define RAWFEAT_TESTS_TEST_UTIL_H_

// Shared test helpers: private temp dirs, an in-process server on
// 127.0.0.1:0, and event builders.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "client/client.h"
#include "rawfeat/v1/rawfeat.grpc.pb.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "rocksdb/db.h"
#include "server/server.h"

namespace rawfeat {
namespace testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on
// destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A stopped store's RocksDB opened directly, every column family with
// default options, for tests that read or damage what the store wrote.
// ok() says whether it opened (failures are test failures too).
class RawStore {
 public:
  explicit RawStore(const std::string& dir, bool read_only = false);
  ~RawStore();
  bool ok() const { return db_ != nullptr; }
  rocksdb::DB* db() { return db_.get(); }
  const std::vector<std::string>& families() const { return names_; }
  // The handle of the family called `name`; nullptr if there is none.
  rocksdb::ColumnFamilyHandle* family(const std::string& name) const;

 private:
  std::vector<std::string> names_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::unique_ptr<rocksdb::DB> db_;
};

// When an injected disk fault strikes: once armed with `left`, the
// operations it counts pass `left` times, then every one fails until
// Disarm. Thread-safe.
class FaultCountdown {
 public:
  void Arm(int left) { left_ = left; }
  void Disarm() { left_ = -1; }
  // Counts one operation; true if it is to fail (then counted as injected).
  bool Strike() {
    int left = left_.load();
    while (left > 0 && !left_.compare_exchange_weak(left, left - 1)) {
    }
    if (left != 0) return false;  // disarmed, or one of those that pass
    ++injected_;
    return true;
  }
  // True once every operation fails.
  bool striking() const { return left_.load() == 0; }
  // Operations failed so far.
  int injected() const { return injected_.load(); }

 private:
  std::atomic<int> left_{-1};
  std::atomic<int> injected_{0};
};

// A tmpfs of `size` bytes ("1m", "160m") mounted on `dir` (created) until
// destruction, for tests of a real full disk. Mounting needs the right to
// (root in a container that allows it): mounted() says whether it worked,
// why() why not.
class Tmpfs {
 public:
  Tmpfs(const std::string& dir, const std::string& size);
  ~Tmpfs();
  bool mounted() const { return why_.empty(); }
  const std::string& why() const { return why_; }

 private:
  std::string dir_;
  std::string why_;
};

// The example `orders` stream of schemas/ (entity user_id, time order_time).
v1::StreamDef OrdersStream();
v1::Definitions OrdersDefinitions();

// An orders event with every required field; `coupon` set when non-empty.
v1::Event Order(const std::string& id, const std::string& user, int64_t time_us,
                double amount, int64_t quantity = 1,
                const std::string& category = "books",
                const std::string& coupon = "");

// Typed feature values as the API returns them.
v1::Value Int(int64_t i);
v1::Value Double(double d);
v1::Value Str(const std::string& s);
v1::Value Bool(bool b);

// An IngestRequest of `events` for the orders stream.
v1::IngestRequest OrdersBatch(std::vector<v1::Event> events,
                              v1::OnInvalid mode = v1::REJECT_BATCH);

// Reads every event `req` selects (ReadEvents, seq order) and calls `take`
// with each until it returns false. The call's status.
absl::Status ForEachEvent(Client& client, const v1::ReadEventsRequest& req,
                          const std::function<bool(const v1::Event&)>& take);

// A feature definition (k only for last_k).
v1::FeatureDef Feature(const std::string& name, const std::string& agg,
                       const std::string& field, const std::string& window,
                       uint32_t k = 0);

// A raw stub on its own channel (messages up to 256 MiB) whose HTTP/2
// receive window stays at 64 KiB: with BDP probing, gRPC grows the window
// until megabytes of answer sit in a reader's buffers, so a reader that
// stops reading would not stall the server's stream in a test.
std::unique_ptr<v1::FeatureStore::Stub> SmallWindowStub(
    const std::string& address);

// Decodes a columnar join answer (v1::ColumnChunk, as rawfeat.proto
// documents it) into rows: rows[row_index] gets row_index and values.
// Adds a test failure for a chunk that breaks the format.
void DecodeColumns(const v1::ColumnChunk& chunk,
                   std::map<uint64_t, v1::JoinedRow>* rows);

// Deterministic serialization (map fields sorted), for comparing messages.
std::string Canonical(const google::protobuf::Message& m);

// An in-process rawfeatd on 127.0.0.1:0 with its own data dir, plus a
// client with short deadlines.
class TestServer {
 public:
  // `data_dir` empty = a fresh temp dir owned by this object.
  explicit TestServer(std::string data_dir = "", bool apply_orders = true,
                      ServerOptions base = ServerOptions());
  ~TestServer();
  Client& client() { return *client_; }
  Server& server() { return *server_; }
  const std::string& data_dir() const { return data_dir_; }
  std::string address() const { return server_->address(); }
  // Stops the server (the data dir stays) and starts a new one on it.
  void Restart();
  // The day tiles stored once the tile builds lookups asked for (run in the
  // background) are done; waits for them (up to a minute, then fails).
  uint64_t SettledTiles();

 private:
  void Start();
  std::unique_ptr<TempDir> owned_dir_;
  std::string data_dir_;
  ServerOptions options_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
};

}  // namespace testing
}  // namespace rawfeat

#endif  // RAWFEAT_TESTS_TEST_UTIL_H_
