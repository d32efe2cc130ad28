#include "server/events/event_wire.h"

#include <limits>
#include <random>

#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/common/hash.h"
#include "server/common/time_util.h"

namespace rawfeat {
namespace {

StreamSchema MakeSchema() {
  StreamSchema schema;
  schema.stream_id = 7;
  schema.name = "orders";
  v1::StreamDef def;
  def.set_name("orders");
  const std::pair<const char*, v1::FieldType> fields[] = {
      {"amount", v1::DOUBLE},
      {"quantity", v1::INT64},
      {"category", v1::STRING},
      {"coupon", v1::BOOL},
      {"a_field_name_longer_than_one_hundred_and_twenty_seven_bytes_so_that_"
       "its_length_prefix_takes_two_varint_bytes_on_the_wire_xxxxxxxxxxxxxxx",
       v1::STRING},
  };
  for (const auto& [name, type] : fields) {
    v1::FieldDef* f = def.add_fields();
    f->set_name(name);
    f->set_type(type);
    schema.types.push_back(type);
  }
  schema.versions.push_back(def);
  return schema;
}

// The reference: the same event built through the protobuf API.
v1::Event Reference(const StreamSchema& schema, const StoredEvent& k) {
  EventValueReader reader;
  EXPECT_TRUE(reader.Parse(k.value, schema.types));
  v1::Event e;
  e.set_event_id(reader.event_id());
  e.set_entity(std::string(k.entity));
  *e.mutable_event_time() = MicrosToTimestamp(k.time_us);
  e.set_seq(k.seq);
  for (size_t i = 0; i < reader.fields().size(); ++i) {
    if (!reader.fields()[i].present()) continue;
    FieldValueToProto(reader.fields()[i],
                      &(*e.mutable_fields())[schema.def().fields(i).name()]);
  }
  return e;
}

struct Stored {
  std::string entity;
  int64_t time_us = 0;
  uint64_t seq = 0;
  std::string value;

  StoredEvent ref() const { return {seq, 7, entity, time_us, value}; }
};

Stored RandomEvent(std::mt19937_64& rng, uint64_t seq) {
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  const int64_t times[] = {0,
                           -1,
                           1,
                           999999,
                           1000000,
                           -1000001,
                           std::numeric_limits<int64_t>::min() / 2,
                           static_cast<int64_t>(rng() % (1LL << 52))};
  const std::string entities[] = {"u1", "", std::string(200, 'e'),
                                  "\xc3\xa9t\xc3\xa9"};
  std::vector<FieldValue> values(static_cast<size_t>(2 + pick(4)));
  static const std::string kStrings[] = {"", "books", std::string(300, 's')};
  for (size_t i = 0; i < values.size(); ++i) {
    if (pick(4) == 0) continue;  // absent
    FieldValue& v = values[i];
    switch (i) {
      case 0: {
        const double ds[] = {0.0, -0.0, 1e-300, -12.5,
                             std::numeric_limits<double>::max()};
        v.type = v1::DOUBLE;
        v.d = ds[pick(5)];
        break;
      }
      case 1: {
        const int64_t is[] = {0,
                              -1,
                              1,
                              std::numeric_limits<int64_t>::min(),
                              std::numeric_limits<int64_t>::max(),
                              300};
        v.type = v1::INT64;
        v.i = is[pick(6)];
        break;
      }
      case 3:
        v.type = v1::BOOL;
        v.b = pick(2) == 1;
        break;
      default:
        v.type = v1::STRING;
        v.s = kStrings[pick(3)];
    }
  }
  Stored out;
  out.entity = entities[pick(4)];
  out.time_us = times[pick(8)];
  out.seq = seq;
  if (pick(2) == 0) {
    Sha256Digest d;
    for (auto& b : d) b = static_cast<uint8_t>(rng());
    EncodeEventValue(0, "", &d, values, &out.value);
  } else {
    const std::string ids[] = {"e-1", "", std::string(130, 'i')};
    EncodeEventValue(0, ids[pick(3)], nullptr, values, &out.value);
  }
  return out;
}

TEST(EventWireTest, ChunksParseAsTheReferenceEvents) {
  const StreamSchema schema = MakeSchema();
  EventChunkEncoder encoder(schema);
  std::mt19937_64 rng(42);
  for (int round = 0; round < 200; ++round) {
    ChunkBuffer chunk;
    v1::ReadEventsResponse expected;
    const int n = static_cast<int>(rng() % 20);
    for (int i = 0; i < n; ++i) {
      const uint64_t seqs[] = {0, 1, 127, 128, rng()};
      const Stored e = RandomEvent(rng, seqs[rng() % 5]);
      ASSERT_TRUE(encoder.AppendEvent(e.ref(), &chunk).ok());
      *expected.add_events() = Reference(schema, e.ref());
    }
    const uint64_t watermark = round % 3 == 0 ? 0 : rng();
    EventChunkEncoder::AppendWatermark(watermark, &chunk);
    expected.set_watermark(watermark);
    v1::ReadEventsResponse parsed;
    ASSERT_TRUE(parsed.ParseFromArray(chunk.data(), chunk.size()))
        << "round " << round;
    EXPECT_TRUE(
        google::protobuf::util::MessageDifferencer::Equals(parsed, expected))
        << "round " << round << "\nparsed: " << parsed.DebugString()
        << "\nexpected: " << expected.DebugString();
  }
}

TEST(EventWireTest, CorruptValueIsDataLossAndLeavesTheChunk) {
  const StreamSchema schema = MakeSchema();
  EventChunkEncoder encoder(schema);
  std::mt19937_64 rng(1);
  const Stored good = RandomEvent(rng, 5);
  ChunkBuffer chunk;
  ASSERT_TRUE(encoder.AppendEvent(good.ref(), &chunk).ok());
  const std::string before(chunk.view());
  Stored bad = good;
  bad.value = good.value.substr(0, good.value.size() / 2) + "\xff";
  absl::Status s = encoder.AppendEvent(bad.ref(), &chunk);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("orders"), std::string::npos) << s;
  bad.value.clear();
  s = encoder.AppendEvent(bad.ref(), &chunk);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(chunk.view(), before);
}

}  // namespace
}  // namespace rawfeat
