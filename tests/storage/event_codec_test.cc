#include "server/storage/event_codec.h"

#include "gtest/gtest.h"

namespace rawfeat {
namespace {

std::vector<v1::FieldType> Types() {
  return {v1::DOUBLE, v1::INT64, v1::STRING, v1::STRING, v1::BOOL};
}

TEST(EventCodecTest, RoundTripsEveryTypeAndAbsence) {
  std::vector<FieldValue> values(5);
  values[0].type = v1::DOUBLE;
  values[0].d = -0.1;
  values[1].type = v1::INT64;
  values[1].i = std::numeric_limits<int64_t>::min();
  values[2].type = v1::STRING;
  values[2].s = absl::string_view("a\0b", 3);
  values[4].type = v1::BOOL;
  values[4].b = true;
  std::string enc;
  EncodeEventValue(3, "evt-1", nullptr, values, &enc);
  EventValueReader r;
  ASSERT_TRUE(r.Parse(enc, Types()));
  EXPECT_EQ(r.schema_version(), 3u);
  EXPECT_EQ(r.event_id(), "evt-1");
  ASSERT_EQ(r.fields().size(), 5u);
  EXPECT_EQ(r.fields()[0].d, -0.1);
  EXPECT_EQ(r.fields()[1].i, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(r.fields()[2].s, absl::string_view("a\0b", 3));
  EXPECT_FALSE(r.fields()[3].present());
  EXPECT_TRUE(r.fields()[4].b);
}

TEST(EventCodecTest, DerivedIdIsHexOfDigest) {
  Sha256Digest d{};
  d[0] = 0xab;
  d[31] = 0x01;
  std::string enc;
  EncodeEventValue(0, "", &d, {}, &enc);
  EventValueReader r;
  ASSERT_TRUE(r.Parse(enc, {}));
  EXPECT_EQ(r.event_id().size(), 64u);
  EXPECT_EQ(r.event_id().substr(0, 2), "ab");
  EXPECT_EQ(r.event_id().substr(62), "01");
}

TEST(EventCodecTest, OlderSchemaVersionDecodesAgainstNewer) {
  // Written with 2 fields; the stream has since gained 3 more.
  std::vector<FieldValue> values(2);
  values[0].type = v1::DOUBLE;
  values[0].d = 1.5;
  std::string enc;
  EncodeEventValue(0, "x", nullptr, values, &enc);
  EventValueReader r;
  ASSERT_TRUE(r.Parse(enc, Types()));
  EXPECT_EQ(r.fields().size(), 2u);
  EXPECT_EQ(r.fields()[0].d, 1.5);
}

TEST(EventCodecTest, RejectsCorruption) {
  std::vector<FieldValue> values(5);
  values[2].type = v1::STRING;
  values[2].s = "hello";
  std::string enc;
  EncodeEventValue(0, "x", nullptr, values, &enc);
  EventValueReader r;
  for (size_t cut = 0; cut < enc.size(); ++cut) {
    EXPECT_FALSE(r.Parse(enc.substr(0, cut), Types())) << cut;
  }
  EXPECT_FALSE(r.Parse(enc + "junk", Types()));
  EXPECT_FALSE(r.Parse(enc, {v1::DOUBLE}));  // more fields than known
}

}  // namespace
}  // namespace rawfeat
