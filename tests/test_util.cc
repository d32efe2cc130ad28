#include "tests/test_util.h"

#include <stdlib.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/common/time_util.h"

namespace rawfeat {
namespace testing {

RawStore::RawStore(const std::string& dir, bool read_only) {
  rocksdb::Status s =
      rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names_);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!s.ok()) return;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const auto& n : names_) {
    cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  }
  rocksdb::DB* raw = nullptr;
  s = read_only ? rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), dir, cfs,
                                               &handles_, &raw)
                : rocksdb::DB::Open(rocksdb::DBOptions(), dir, cfs, &handles_,
                                    &raw);
  EXPECT_TRUE(s.ok()) << s.ToString();
  db_.reset(raw);
}

RawStore::~RawStore() {
  for (auto* h : handles_) {
    if (db_ != nullptr) db_->DestroyColumnFamilyHandle(h);
  }
}

rocksdb::ColumnFamilyHandle* RawStore::family(const std::string& name) const {
  for (size_t i = 0; i < names_.size() && i < handles_.size(); ++i) {
    if (names_[i] == name) return handles_[i];
  }
  return nullptr;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(base != nullptr ? base : "/tmp") + "/rawfeat-test-XXXXXX";
  char* made = mkdtemp(tmpl.data());
  if (made == nullptr) std::abort();
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

v1::StreamDef OrdersStream() {
  v1::StreamDef s;
  s.set_name("orders");
  s.set_entity_field("user_id");
  s.set_time_field("order_time");
  auto add = [&](const char* name, v1::FieldType t, bool required) {
    auto* f = s.add_fields();
    f->set_name(name);
    f->set_type(t);
    f->set_required(required);
  };
  add("amount", v1::DOUBLE, true);
  add("quantity", v1::INT64, true);
  add("category", v1::STRING, true);
  add("coupon", v1::STRING, false);
  add("is_gift", v1::BOOL, false);
  return s;
}

Tmpfs::Tmpfs(const std::string& dir, const std::string& size) : dir_(dir) {
  std::filesystem::create_directories(dir);
  const std::string options = "size=" + size;
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) != 0) {
    why_ =
        std::string("cannot mount a tmpfs here (") + std::strerror(errno) + ")";
  }
}

Tmpfs::~Tmpfs() {
  if (mounted()) ::umount2(dir_.c_str(), MNT_DETACH);
}

v1::Definitions OrdersDefinitions() {
  v1::Definitions d;
  *d.add_streams() = OrdersStream();
  return d;
}

v1::Event Order(const std::string& id, const std::string& user, int64_t time_us,
                double amount, int64_t quantity, const std::string& category,
                const std::string& coupon) {
  v1::Event e;
  e.set_event_id(id);
  e.set_entity(user);
  *e.mutable_event_time() = MicrosToTimestamp(time_us);
  auto& f = *e.mutable_fields();
  f["amount"].set_double_value(amount);
  f["quantity"].set_int64_value(quantity);
  f["category"].set_string_value(category);
  if (!coupon.empty()) f["coupon"].set_string_value(coupon);
  return e;
}

v1::Value Int(int64_t i) {
  v1::Value v;
  v.set_int64_value(i);
  return v;
}
v1::Value Double(double d) {
  v1::Value v;
  v.set_double_value(d);
  return v;
}
v1::Value Str(const std::string& s) {
  v1::Value v;
  v.set_string_value(s);
  return v;
}
v1::Value Bool(bool b) {
  v1::Value v;
  v.set_bool_value(b);
  return v;
}

v1::IngestRequest OrdersBatch(std::vector<v1::Event> events,
                              v1::OnInvalid mode) {
  v1::IngestRequest r;
  r.set_stream("orders");
  r.set_on_invalid(mode);
  for (auto& e : events) *r.add_events() = std::move(e);
  return r;
}

absl::Status ForEachEvent(Client& client, const v1::ReadEventsRequest& req,
                          const std::function<bool(const v1::Event&)>& take) {
  return client.ReadEvents(req, [&](const v1::ReadEventsResponse& chunk) {
    for (const auto& e : chunk.events()) {
      if (!take(e)) return false;
    }
    return true;
  });
}

v1::FeatureDef Feature(const std::string& name, const std::string& agg,
                       const std::string& field, const std::string& window,
                       uint32_t k) {
  v1::FeatureDef f;
  f.set_name(name);
  f.set_aggregation(agg);
  f.set_field(field);
  f.set_window(window);
  f.set_k(k);
  return f;
}

namespace {

uint64_t LittleEndian(const std::string& bytes, size_t at, int width) {
  uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) {
    v = v << 8 | static_cast<uint8_t>(bytes[at * width + i]);
  }
  return v;
}

// One column of `rows` rows as Values, checking the format as it goes.
std::vector<v1::Value> DecodeColumn(const v1::Column& c, size_t rows) {
  std::vector<v1::Value> out(rows);
  EXPECT_EQ(c.present().size(), rows);
  if (c.present().size() != rows) return out;
  const size_t fixed =
      c.kind() == v1::COLUMN_INT64 || c.kind() == v1::COLUMN_DOUBLE ? 8
      : c.kind() == v1::COLUMN_BOOL                                 ? 1
                                                                    : 0;
  EXPECT_EQ(c.fixed().size(), fixed * rows) << v1::ColumnKind_Name(c.kind());
  if (c.fixed().size() != fixed * rows) return out;
  std::vector<v1::Value> items;
  size_t item = 0;
  if (c.kind() == v1::COLUMN_STRING) {
    EXPECT_EQ(static_cast<size_t>(c.strings_size()), rows);
    if (static_cast<size_t>(c.strings_size()) != rows) return out;
  } else if (c.kind() == v1::COLUMN_LIST) {
    EXPECT_EQ(c.list_lengths().size(), 4 * rows);
    if (c.list_lengths().size() != 4 * rows) return out;
    size_t total = 0;
    for (size_t i = 0; i < rows; ++i)
      total += LittleEndian(c.list_lengths(), i, 4);
    items = DecodeColumn(c.items(), total);
  }
  for (size_t i = 0; i < rows; ++i) {
    const bool present = c.present()[i] != 0;
    v1::Value& v = out[i];
    switch (c.kind()) {
      case v1::COLUMN_INT64:
        if (present) {
          v.set_int64_value(
              static_cast<int64_t>(LittleEndian(c.fixed(), i, 8)));
        }
        break;
      case v1::COLUMN_DOUBLE:
        if (present) {
          const uint64_t bits = LittleEndian(c.fixed(), i, 8);
          double d;
          std::memcpy(&d, &bits, sizeof(d));
          v.set_double_value(d);
        }
        break;
      case v1::COLUMN_BOOL:
        if (present) v.set_bool_value(c.fixed()[i] != 0);
        break;
      case v1::COLUMN_STRING:
        if (present) v.set_string_value(c.strings(static_cast<int>(i)));
        break;
      case v1::COLUMN_LIST: {
        const size_t n = LittleEndian(c.list_lengths(), i, 4);
        if (present) {
          auto* list = v.mutable_list_value();
          for (size_t j = 0; j < n; ++j) *list->add_values() = items[item + j];
        } else {
          EXPECT_EQ(n, 0u) << "a null list row has items";
        }
        item += n;
        break;
      }
      default:
        EXPECT_FALSE(present) << "a COLUMN_NULL column has a value";
        break;
    }
  }
  return out;
}

}  // namespace

void DecodeColumns(const v1::ColumnChunk& chunk,
                   std::map<uint64_t, v1::JoinedRow>* rows) {
  ASSERT_EQ(chunk.row_index().size() % 8, 0u);
  const size_t n = chunk.row_index().size() / 8;
  std::vector<std::vector<v1::Value>> columns;
  for (const v1::Column& c : chunk.columns()) {
    columns.push_back(DecodeColumn(c, n));
  }
  for (size_t i = 0; i < n; ++i) {
    const uint64_t index = LittleEndian(chunk.row_index(), i, 8);
    EXPECT_EQ(rows->count(index), 0u) << "row " << index << " answered twice";
    v1::JoinedRow& row = (*rows)[index];
    row.set_row_index(index);
    for (auto& column : columns) *row.add_values() = column[i];
  }
}

std::unique_ptr<v1::FeatureStore::Stub> SmallWindowStub(
    const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 10);
  return v1::FeatureStore::NewStub(grpc::CreateCustomChannel(
      address, grpc::InsecureChannelCredentials(), args));
}

std::string Canonical(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream raw(&out);
    google::protobuf::io::CodedOutputStream coded(&raw);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

TestServer::TestServer(std::string data_dir, bool apply_orders,
                       ServerOptions base)
    : options_(std::move(base)) {
  if (data_dir.empty()) {
    owned_dir_ = std::make_unique<TempDir>();
    data_dir = owned_dir_->Sub("data");
  }
  data_dir_ = data_dir;
  options_.listen = "127.0.0.1:0";
  options_.data_dir = data_dir_;
  Start();
  if (apply_orders) {
    v1::ApplyDefinitionsRequest req;
    *req.mutable_definitions() = OrdersDefinitions();
    auto r = client_->ApplyDefinitions(req);
    EXPECT_TRUE(r.ok()) << r.status();
  }
}

TestServer::~TestServer() {
  client_.reset();
  server_.reset();
}

void TestServer::Start() {
  auto s = Server::Start(options_);
  if (!s.ok()) {
    ADD_FAILURE() << "server start: " << s.status();
    std::abort();
  }
  server_ = std::move(*s);
  ClientOptions co;
  co.timeout = std::chrono::seconds(30);
  co.stream_timeout = std::chrono::seconds(120);
  client_ = std::make_unique<Client>(server_->address(), co);
}

void TestServer::Restart() {
  client_.reset();
  server_.reset();
  Start();
}

uint64_t TestServer::SettledTiles() {
  for (int i = 0; i < 1200; ++i) {
    auto st = client_->GetStatus();
    EXPECT_TRUE(st.ok()) << st.status();
    if (!st.ok()) return 0;
    if (st->tile_builds_pending() == 0) return st->tiles();
    absl::SleepFor(absl::Milliseconds(50));
  }
  ADD_FAILURE() << "tile builds still pending after a minute";
  return 0;
}

}  // namespace testing
}  // namespace rawfeat
