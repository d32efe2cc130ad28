#include "server/schema/event_validator.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "server/common/time_util.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

// The derived id of GoldenOrder(). Changing the canonical form would break
// idempotency of every stored derived id, so this value must never change.
constexpr char kGoldenOrderId[] =
    "05e0b795b88cd844b864469fb1e7be411154dea48f5ba5da7bae35f7e3156368";

v1::Event GoldenOrder() {
  return testing::Order("", "u1", 1795478400LL * 1000000, 12.5, 2, "books",
                        "SAVE");
}

class EventValidatorTest : public ::testing::Test {
 protected:
  std::shared_ptr<const StreamSchema> Schema(const v1::StreamDef& def) {
    auto store = EventStore::Open(dir_.Sub(std::to_string(n_++)), {});
    EXPECT_TRUE(store.ok());
    Registry registry(store->get());
    v1::Definitions d;
    *d.add_streams() = def;
    EXPECT_TRUE(registry.Apply(d, false, "").ok());
    return registry.FindStream(def.name());
  }

  // Prepares one event; returns its errors.
  std::vector<v1::RowError> Prepare(const StreamSchema& schema,
                                    const v1::Event& e,
                                    std::vector<PendingEvent>* out,
                                    IngestLimits limits = IngestLimits()) {
    google::protobuf::RepeatedPtrField<v1::Event> events;
    *events.Add() = e;
    std::vector<v1::RowError> errors;
    PrepareEvents(schema, events, limits, out, &errors);
    // The server reads a batch from its bytes where it can: the same
    // events and errors from there (a list value is not read that way).
    v1::IngestRequest request;
    *request.mutable_events() = events;
    const std::string bytes = request.SerializeAsString();
    IngestBatch read;
    if (ReadIngestBatch(bytes, &read)) {
      std::vector<PendingEvent> from_bytes;
      std::vector<v1::RowError> errors_from_bytes;
      PrepareEvents(schema, read, limits, &from_bytes, &errors_from_bytes);
      EXPECT_EQ(from_bytes.size(), out->size());
      for (size_t i = 0; i < from_bytes.size() && i < out->size(); ++i) {
        EXPECT_EQ(from_bytes[i].event_id, (*out)[i].event_id);
        EXPECT_EQ(from_bytes[i].value, (*out)[i].value);
      }
      EXPECT_EQ(errors_from_bytes.size(), errors.size());
      for (size_t i = 0; i < errors.size() && i < errors_from_bytes.size();
           ++i) {
        EXPECT_EQ(testing::Canonical(errors_from_bytes[i]),
                  testing::Canonical(errors[i]));
      }
    } else {
      EXPECT_TRUE(e.fields().count("coupon") != 0 &&
                  e.fields().at("coupon").has_list_value());
    }
    return errors;
  }

  testing::TempDir dir_;
  int n_ = 0;
};

TEST_F(EventValidatorTest, ContentHashIsStable) {
  auto schema = Schema(testing::OrdersStream());
  std::vector<PendingEvent> out;
  ASSERT_TRUE(Prepare(*schema, GoldenOrder(), &out).empty());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].event_id, kGoldenOrderId);

  // An added optional field that is absent does not change it.
  v1::StreamDef evolved = testing::OrdersStream();
  auto* f = evolved.add_fields();
  f->set_name("channel");
  f->set_type(v1::STRING);
  auto schema2 = Schema(evolved);
  std::vector<PendingEvent> out2;
  ASSERT_TRUE(Prepare(*schema2, GoldenOrder(), &out2).empty());
  EXPECT_EQ(out2[0].event_id, out[0].event_id);

  // Any change of content does.
  v1::Event other = GoldenOrder();
  (*other.mutable_fields())["amount"].set_double_value(12.25);
  std::vector<PendingEvent> out3;
  ASSERT_TRUE(Prepare(*schema, other, &out3).empty());
  EXPECT_NE(out3[0].event_id, out[0].event_id);
  // A given id is kept; the hash still covers content only.
  v1::Event with_id = GoldenOrder();
  with_id.set_event_id("o-1");
  std::vector<PendingEvent> out4;
  ASSERT_TRUE(Prepare(*schema, with_id, &out4).empty());
  EXPECT_EQ(out4[0].event_id, "o-1");
  EXPECT_EQ(out4[0].content_hash, out[0].content_hash);
}

TEST_F(EventValidatorTest, WidensInt64ToDouble) {
  auto schema = Schema(testing::OrdersStream());
  v1::Event e = GoldenOrder();
  (*e.mutable_fields())["amount"].set_int64_value(12);
  std::vector<PendingEvent> out;
  ASSERT_TRUE(Prepare(*schema, e, &out).empty());
  v1::Event d = GoldenOrder();
  (*d.mutable_fields())["amount"].set_double_value(12.0);
  std::vector<PendingEvent> out2;
  ASSERT_TRUE(Prepare(*schema, d, &out2).empty());
  EXPECT_EQ(out[0].content_hash, out2[0].content_hash);
}

TEST_F(EventValidatorTest, EachBadInputNamesRowFieldAndReason) {
  auto schema = Schema(testing::OrdersStream());
  IngestLimits limits;
  limits.max_entity_bytes = 16;
  limits.max_string_bytes = 8;
  limits.max_event_id_bytes = 8;
  struct Case {
    const char* field;
    const char* reason;
    std::function<void(v1::Event*)> change;
  };
  const std::vector<Case> cases = {
      {"user_id", "entity is empty", [](v1::Event* e) { e->clear_entity(); }},
      {"user_id", "limit is 16",
       [](v1::Event* e) { e->set_entity(std::string(17, 'x')); }},
      {"user_id", "NUL",
       [](v1::Event* e) { e->set_entity(std::string("a\0b", 3)); }},
      {"order_time", "missing", [](v1::Event* e) { e->clear_event_time(); }},
      {"order_time", "outside",
       [](v1::Event* e) { e->mutable_event_time()->set_seconds(1LL << 40); }},
      {"event_id", "limit is 8",
       [](v1::Event* e) { e->set_event_id("123456789"); }},
      {"price", "unknown field 'price'",
       [](v1::Event* e) {
         (*e->mutable_fields())["price"].set_int64_value(1);
       }},
      {"quantity", "is INT64, got DOUBLE",
       [](v1::Event* e) {
         (*e->mutable_fields())["quantity"].set_double_value(1.5);
       }},
      {"amount", "is DOUBLE, got STRING",
       [](v1::Event* e) {
         (*e->mutable_fields())["amount"].set_string_value("1");
       }},
      {"is_gift", "is BOOL, got INT64",
       [](v1::Event* e) {
         (*e->mutable_fields())["is_gift"].set_int64_value(1);
       }},
      {"amount", "not finite",
       [](v1::Event* e) {
         (*e->mutable_fields())["amount"].set_double_value(std::nan(""));
       }},
      {"amount", "not finite",
       [](v1::Event* e) {
         (*e->mutable_fields())["amount"].set_double_value(
             std::numeric_limits<double>::infinity());
       }},
      {"category", "limit is 8",
       [](v1::Event* e) {
         (*e->mutable_fields())["category"].set_string_value("123456789");
       }},
      {"category", "required field 'category' is missing",
       [](v1::Event* e) { e->mutable_fields()->erase("category"); }},
      {"amount", "required field 'amount' is null",
       [](v1::Event* e) { (*e->mutable_fields())["amount"].Clear(); }},
      {"coupon", "got a list",
       [](v1::Event* e) {
         (*e->mutable_fields())["coupon"].mutable_list_value();
       }},
  };
  for (const auto& c : cases) {
    v1::Event e = GoldenOrder();
    c.change(&e);
    std::vector<PendingEvent> out;
    auto errors = Prepare(*schema, e, &out, limits);
    EXPECT_TRUE(out.empty()) << c.reason;
    ASSERT_EQ(errors.size(), 1u) << c.reason;
    EXPECT_EQ(errors[0].row(), 0);
    EXPECT_EQ(errors[0].field(), c.field) << c.reason;
    EXPECT_NE(errors[0].reason().find(c.reason), std::string::npos)
        << errors[0].reason();
  }
}

TEST_F(EventValidatorTest, OptionalNullIsAbsent) {
  auto schema = Schema(testing::OrdersStream());
  v1::Event with_null = GoldenOrder();
  (*with_null.mutable_fields())["is_gift"].Clear();
  std::vector<PendingEvent> a, b;
  ASSERT_TRUE(Prepare(*schema, with_null, &a).empty());
  ASSERT_TRUE(Prepare(*schema, GoldenOrder(), &b).empty());
  EXPECT_EQ(a[0].content_hash, b[0].content_hash);
}

}  // namespace
}  // namespace rawfeat
