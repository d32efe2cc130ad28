// ColumnChunkBuilder: rows of Values in, a ColumnChunk out that decodes
// (by the format rawfeat.proto documents) to the same Values.

#include "server/views/columns.h"

#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

using testing::Bool;
using testing::Double;
using testing::Int;
using testing::Str;

v1::Value List(std::vector<v1::Value> items) {
  v1::Value v;
  for (auto& item : items) *v.mutable_list_value()->add_values() = item;
  return v;
}

// A row's values as JoinedRow `values` fields (what the join keeps).
std::string Fields(const std::vector<v1::Value>& values) {
  v1::JoinedRow row;
  for (const auto& v : values) *row.add_values() = v;
  return row.SerializeAsString();
}

// Builds one chunk of `rows` (row i has index indices[i]), returns it as a
// parsed JoinFeaturesResponse.
v1::JoinFeaturesResponse Build(const std::vector<std::vector<v1::Value>>& rows,
                               const std::vector<uint64_t>& indices,
                               size_t columns) {
  ColumnChunkBuilder b(columns);
  for (size_t i = 0; i < rows.size(); ++i) {
    b.StartRow(indices[i]);
    // A row's values may come in pieces (a service's parts).
    const size_t half = rows[i].size() / 2;
    std::vector<v1::Value> first(rows[i].begin(), rows[i].begin() + half);
    std::vector<v1::Value> second(rows[i].begin() + half, rows[i].end());
    EXPECT_TRUE(b.AddValues(Fields(first)).ok());
    EXPECT_TRUE(b.AddValues(Fields(second)).ok());
  }
  EXPECT_EQ(b.rows(), rows.size());
  std::string out;
  EXPECT_TRUE(
      b.AppendTo(v1::JoinFeaturesResponse::kColumnsFieldNumber, &out).ok());
  EXPECT_EQ(b.rows(), 0u);
  v1::JoinFeaturesResponse r;
  EXPECT_TRUE(r.ParseFromString(out));
  return r;
}

TEST(ColumnChunkBuilderTest, EveryKindNullsAndNestedListsRoundTrip) {
  const v1::Value null;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<std::vector<v1::Value>> rows = {
      // Nulls first: each column's kind is set by a later row.
      {null, null, null, null, null, null, null},
      {Int(INT64_MIN), Double(-0.0), Str(""), Bool(false), List({}), null,
       List({Str("a")})},
      {Int(INT64_MAX), Double(nan), Str("größe"), Bool(true),
       List({Int(1), Int(-2)}), null, null},
      {null, Double(std::ldexp(1.0, 60)), null, null,
       List({Int(0), Int(1LL << 55), Int(-1)}), null,
       List({Str("x"), Str(std::string("a\0b", 3))})},
      {Int(0), null, Str(std::string(300, 'z')), Bool(true), null, null,
       List({})},
  };
  const std::vector<uint64_t> indices = {7, 3, 1ULL << 40, 0, 12};
  auto r = Build(rows, indices, 7);
  ASSERT_EQ(r.columns().columns_size(), 7);
  EXPECT_EQ(r.columns().columns(0).kind(), v1::COLUMN_INT64);
  EXPECT_EQ(r.columns().columns(1).kind(), v1::COLUMN_DOUBLE);
  EXPECT_EQ(r.columns().columns(2).kind(), v1::COLUMN_STRING);
  EXPECT_EQ(r.columns().columns(3).kind(), v1::COLUMN_BOOL);
  EXPECT_EQ(r.columns().columns(4).kind(), v1::COLUMN_LIST);
  EXPECT_EQ(r.columns().columns(5).kind(), v1::COLUMN_NULL);
  EXPECT_EQ(r.columns().columns(4).items().kind(), v1::COLUMN_INT64);
  std::map<uint64_t, v1::JoinedRow> decoded;
  testing::DecodeColumns(r.columns(), &decoded);
  ASSERT_EQ(decoded.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const v1::JoinedRow& got = decoded[indices[i]];
    ASSERT_EQ(got.values_size(), 7) << "row " << i;
    for (int c = 0; c < 7; ++c) {
      // Bytes compare: -0.0 and NaN keep their bits.
      EXPECT_EQ(got.values(c).SerializeAsString(),
                rows[i][c].SerializeAsString())
          << "row " << i << " column " << c;
    }
  }
}

TEST(ColumnChunkBuilderTest, TheBuilderIsReusedAfterEachChunk) {
  ColumnChunkBuilder b(1);
  for (int chunk = 0; chunk < 3; ++chunk) {
    b.StartRow(chunk);
    ASSERT_TRUE(b.AddValues(Fields({chunk == 1 ? Str("s") : Int(chunk)})).ok());
    std::string out;
    ASSERT_TRUE(
        b.AppendTo(v1::JoinFeaturesResponse::kColumnsFieldNumber, &out).ok());
    v1::JoinFeaturesResponse r;
    ASSERT_TRUE(r.ParseFromString(out));
    // A column's kind is per chunk: the next chunk starts afresh.
    EXPECT_EQ(r.columns().columns(0).kind(),
              chunk == 1 ? v1::COLUMN_STRING : v1::COLUMN_INT64);
    EXPECT_EQ(r.columns().row_index().size(), 8u);
  }
}

TEST(ColumnChunkBuilderTest, BadRowsAreInternalErrors) {
  {
    ColumnChunkBuilder b(1);
    b.StartRow(0);
    ASSERT_TRUE(b.AddValues(Fields({Int(1)})).ok());
    b.StartRow(1);
    absl::Status s = b.AddValues(Fields({Str("x")}));
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
    EXPECT_NE(s.message().find("COLUMN_INT64 and COLUMN_STRING"),
              std::string::npos)
        << s;
  }
  {
    ColumnChunkBuilder b(1);
    b.StartRow(0);
    absl::Status s = b.AddValues(Fields({Int(1), Int(2)}));
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
    EXPECT_NE(s.message().find("more than 1 values"), std::string::npos) << s;
  }
  {
    ColumnChunkBuilder b(2);
    b.StartRow(0);
    ASSERT_TRUE(b.AddValues(Fields({Int(1)})).ok());
    std::string out;
    absl::Status s =
        b.AppendTo(v1::JoinFeaturesResponse::kColumnsFieldNumber, &out);
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
    EXPECT_NE(s.message().find("fewer than 2 values"), std::string::npos) << s;
  }
  for (const std::string& bad :
       {std::string("\x2a\x05\x08"), std::string("\x2a\x02\x11\x01"),
        std::string("\x2a\x01\x78"), std::string("\x12\x00"),
        std::string("\x2a\x03\x08\x01\x08")}) {
    ColumnChunkBuilder b(1);
    b.StartRow(0);
    EXPECT_EQ(b.AddValues(bad).code(), absl::StatusCode::kInternal);
  }
}

}  // namespace
}  // namespace rawfeat
