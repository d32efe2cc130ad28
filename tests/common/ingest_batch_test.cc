#include "server/common/ingest_batch.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "client/client.h"
#include "gtest/gtest.h"
#include "server/common/wire.h"
#include "server/schema/event_validator.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

// The oracle is protobuf's own parser: whatever ReadIngestBatch accepts,
// protobuf must accept too and mean the same by it.

// An entry as comparable data (doubles by their bits: NaN == NaN).
using EntryKey =
    std::tuple<std::string, int, int64_t, uint64_t, std::string, bool>;

EntryKey KeyOf(const IngestEntry& e) {
  uint64_t bits = 0;
  std::memcpy(&bits, &e.value.d, sizeof(bits));
  return {std::string(e.name),    e.value.kind, e.value.i, bits,
          std::string(e.value.s), e.value.b};
}

// A batch as comparable data. Each event's entries are reduced to what a
// protobuf map keeps (the last entry of each name) and sorted by name: a
// parsed map hands its entries out in its own order.
struct Flat {
  std::string stream;
  int on_invalid = 0;
  std::vector<std::tuple<std::string, std::string, bool, int64_t, int32_t,
                         uint64_t, std::vector<EntryKey>>>
      events;
  bool operator==(const Flat& o) const {
    return stream == o.stream && on_invalid == o.on_invalid &&
           events == o.events;
  }
};

Flat Flatten(const IngestBatch& b) {
  Flat f;
  f.stream = std::string(b.stream);
  f.on_invalid = b.on_invalid;
  for (const IngestEvent& e : b.events) {
    std::map<std::string, EntryKey> last;
    for (const IngestEntry& entry : b.fields(e)) {
      last[std::string(entry.name)] = KeyOf(entry);
    }
    std::vector<EntryKey> entries;
    for (const auto& [name, key] : last) entries.push_back(key);
    f.events.emplace_back(std::string(e.event_id), std::string(e.entity),
                          e.has_time, e.seconds, e.nanos, e.seq,
                          std::move(entries));
  }
  return f;
}

// What protobuf makes of `bytes`; false if it does not parse.
bool ProtobufReads(const std::string& bytes, Flat* out) {
  v1::IngestRequest request;
  if (!request.ParseFromString(bytes)) return false;
  IngestBatch batch;
  IngestBatchOf(request, &batch);
  *out = Flatten(batch);
  return true;
}

class RandomRequests {
 public:
  explicit RandomRequests(uint64_t seed) : rng_(seed) {}

  v1::IngestRequest Next() {
    v1::IngestRequest r;
    if (Chance(0.8)) r.set_stream(Text(12));
    if (Chance(0.3)) {
      r.set_on_invalid(static_cast<v1::OnInvalid>(Pick<int>({1, 2, 7, -1})));
    }
    const int n = static_cast<int>(rng_() % 6);
    for (int i = 0; i < n; ++i) *r.add_events() = Event();
    return r;
  }

  // A replay chunk: events with seqs, and mostly a watermark.
  v1::ReadEventsResponse NextChunk() {
    v1::ReadEventsResponse r;
    const int n = static_cast<int>(rng_() % 6);
    for (int i = 0; i < n; ++i) {
      v1::Event* e = r.add_events();
      *e = Event();
      e->set_seq(Pick<uint64_t>({1, 127, 128, ~uint64_t{0}, rng_()}));
    }
    if (Chance(0.9)) r.set_watermark(rng_() >> (rng_() % 64));
    return r;
  }

 private:
  bool Chance(double p) {
    return std::uniform_real_distribution<double>(0, 1)(rng_) < p;
  }
  template <typename T>
  T Pick(std::initializer_list<T> from) {
    return *(from.begin() + rng_() % from.size());
  }
  // Valid UTF-8 of up to about `max` characters: ASCII, two-, three- and
  // four-byte characters; sometimes long enough for two-byte lengths.
  std::string Text(size_t max) {
    const size_t n = Chance(0.1) ? 130 + rng_() % 200 : rng_() % (max + 1);
    std::string s;
    for (size_t i = 0; i < n; ++i) {
      s += Pick<const char*>({"a", "Z", "0", "_", " ", "\x7f", "\xc3\xa9",
                              "\xe6\x97\xa5", "\xf0\x9f\x98\x80"});
    }
    return s;
  }
  v1::Value Value() {
    v1::Value v;
    switch (rng_() % 5) {
      case 0:
        break;  // null
      case 1:
        v.set_int64_value(
            Pick<int64_t>({0, 1, -1, 300, std::numeric_limits<int64_t>::min(),
                           std::numeric_limits<int64_t>::max(),
                           static_cast<int64_t>(rng_())}));
        break;
      case 2:
        v.set_double_value(
            Pick<double>({0.0, -0.0, 1e300, -2.5, 5e-324,
                          std::numeric_limits<double>::quiet_NaN(),
                          std::numeric_limits<double>::infinity(),
                          static_cast<double>(rng_()) / 7}));
        break;
      case 3:
        v.set_string_value(Text(20));
        break;
      default:
        v.set_bool_value(Chance(0.5));
    }
    return v;
  }
  v1::Event Event() {
    v1::Event e;
    if (Chance(0.7)) e.set_event_id(Text(16));
    if (Chance(0.9)) e.set_entity(Text(10));
    if (Chance(0.9)) {
      auto* t = e.mutable_event_time();
      t->set_seconds(Pick<int64_t>(
          {0, -62135596800, 253402300799, 1LL << 40, -1, 1795478400}));
      t->set_nanos(Pick<int32_t>({0, 1, 999999999, -5, 1000000000}));
    }
    if (Chance(0.2)) e.set_seq(rng_());
    const int fields = static_cast<int>(rng_() % 9);
    for (int i = 0; i < fields; ++i) {
      const std::string name =
          Pick<const char*>({"amount", "quantity", "category", "coupon",
                             "is_gift", "price", "", "\xc3\xa9t\xc3\xa9"});
      (*e.mutable_fields())[name] = Value();
    }
    return e;
  }

  std::mt19937_64 rng_;
};

TEST(IngestBatchTest, ReadsWhatProtobufWritesAsProtobufParsesIt) {
  RandomRequests random(1);
  IngestBatch read;
  for (int i = 0; i < 3000; ++i) {
    const std::string bytes = random.Next().SerializeAsString();
    ASSERT_TRUE(ReadIngestBatch(bytes, &read)) << i;
    Flat expected;
    ASSERT_TRUE(ProtobufReads(bytes, &expected));
    ASSERT_TRUE(Flatten(read) == expected) << i;
  }
}

// One to three random edits: bit flips, cuts, inserted bytes, a piece
// again (repeated fields and entries), overwritten bytes.
void Damage(std::string* bytes_out, std::mt19937_64& rng) {
  std::string& bytes = *bytes_out;
  const int edits = 1 + static_cast<int>(rng() % 3);
  for (int k = 0; k < edits; ++k) {
    const size_t at = rng() % bytes.size();
    switch (rng() % 5) {
      case 0:
        bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8)));
        break;
      case 1:
        bytes.resize(at);
        break;
      case 2:
        bytes.insert(at, 1, static_cast<char>(rng()));
        break;
      case 3: {  // a piece again: repeated fields and entries
        const size_t len = 1 + rng() % std::min<size_t>(40, bytes.size() - at);
        bytes.insert(rng() % bytes.size(), bytes.substr(at, len));
        break;
      }
      default:
        bytes[at] = static_cast<char>(rng());
    }
    if (bytes.empty()) break;
  }
}

// Damaged and unusual bytes: read or not, never read otherwise than
// protobuf does. Some of them must be read (else this tests nothing).
TEST(IngestBatchTest, AcceptsOnlyWhatProtobufAcceptsAndMeansTheSame) {
  RandomRequests random(2);
  std::mt19937_64 rng(3);
  IngestBatch read;
  int accepted = 0, refused = 0, refused_by_both = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = random.Next().SerializeAsString();
    if (bytes.empty()) continue;
    Damage(&bytes, rng);
    Flat expected;
    const bool protobuf = ProtobufReads(bytes, &expected);
    if (ReadIngestBatch(bytes, &read)) {
      ++accepted;
      ASSERT_TRUE(protobuf) << "read bytes protobuf refuses, case " << i;
      ASSERT_TRUE(Flatten(read) == expected) << "case " << i;
    } else {
      ++refused;
      refused_by_both += protobuf ? 0 : 1;
    }
  }
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(refused, 1000);
  EXPECT_GT(refused_by_both, 100);
}

// What protobuf makes of a ReadEventsResponse's bytes; false if they do
// not parse.
bool ProtobufReadsChunk(const std::string& bytes, Flat* out,
                        uint64_t* watermark) {
  v1::ReadEventsResponse response;
  if (!response.ParseFromString(bytes)) return false;
  IngestBatch batch;
  IngestBatchOf(response.events(), &batch);
  *out = Flatten(batch);
  *watermark = response.watermark();
  return true;
}

// Checks a chunk ReadEventsChunk read against protobuf's reading, and
// that each event's `bytes` parse to that same event.
void ExpectReadsAsProtobuf(const std::string& bytes, const IngestBatch& read,
                           uint64_t watermark, int i) {
  Flat expected;
  uint64_t expected_watermark = 0;
  ASSERT_TRUE(ProtobufReadsChunk(bytes, &expected, &expected_watermark))
      << "read bytes protobuf refuses, case " << i;
  ASSERT_TRUE(Flatten(read) == expected) << "case " << i;
  EXPECT_EQ(watermark, expected_watermark) << "case " << i;
  google::protobuf::RepeatedPtrField<v1::Event> own;
  for (const IngestEvent& e : read.events) {
    ASSERT_TRUE(own.Add()->ParseFromArray(e.bytes.data(),
                                          static_cast<int>(e.bytes.size())))
        << "case " << i;
  }
  IngestBatch from_own;
  IngestBatchOf(own, &from_own);
  ASSERT_TRUE(Flatten(from_own) == expected) << "case " << i;
}

TEST(ReadEventsChunkTest, ReadsWhatProtobufWritesAsProtobufParsesIt) {
  RandomRequests random(4);
  IngestBatch read;
  for (int i = 0; i < 3000; ++i) {
    const std::string bytes = random.NextChunk().SerializeAsString();
    uint64_t watermark = 1;
    ASSERT_TRUE(ReadEventsChunk(bytes, &read, &watermark)) << i;
    ExpectReadsAsProtobuf(bytes, read, watermark, i);
  }
}

TEST(ReadEventsChunkTest, AcceptsOnlyWhatProtobufAcceptsAndMeansTheSame) {
  RandomRequests random(5);
  std::mt19937_64 rng(6);
  IngestBatch read;
  int accepted = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = random.NextChunk().SerializeAsString();
    if (bytes.empty()) continue;
    Damage(&bytes, rng);
    uint64_t watermark;
    if (ReadEventsChunk(bytes, &read, &watermark)) {
      ++accepted;
      ExpectReadsAsProtobuf(bytes, read, watermark, i);
    } else {
      ++refused;
    }
  }
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(refused, 1000);
}

// What a server of another version may send is left to protobuf: a field
// this reader does not know, a list value, the watermark twice.
TEST(ReadEventsChunkTest, HandsUncommonFormsToProtobuf) {
  IngestBatch read;
  uint64_t watermark;
  v1::ReadEventsResponse plain;
  v1::Event* e = plain.add_events();
  e->set_event_id("o-1");
  e->set_seq(7);
  plain.set_watermark(9);
  const std::string bytes = plain.SerializeAsString();
  ASSERT_TRUE(ReadEventsChunk(bytes, &read, &watermark));
  ASSERT_EQ(read.events.size(), 1u);
  EXPECT_EQ(read.events[0].seq, 7u);
  EXPECT_EQ(watermark, 9u);

  std::string unknown = bytes;
  wire::PutVarintField(&unknown, 3, 1);
  std::string twice = bytes;
  wire::PutVarintField(&twice, v1::ReadEventsResponse::kWatermarkFieldNumber,
                       10);
  v1::ReadEventsResponse listed = plain;
  (*listed.mutable_events(0)->mutable_fields())["tags"].mutable_list_value();
  for (const std::string& b : {unknown, twice, listed.SerializeAsString()}) {
    EXPECT_FALSE(ReadEventsChunk(b, &read, &watermark));
    v1::ReadEventsResponse parsed;
    EXPECT_TRUE(parsed.ParseFromString(b));
  }
}

// The client's reader: the server's form by hand; another server's form
// (here a list value) through protobuf, with the same views and each
// event's bytes; what is no ReadEventsResponse at all is DATA_LOSS.
TEST(EventChunkReaderTest, ReadsOtherFormsThroughProtobuf) {
  RandomRequests random(7);
  EventChunkReader reader;
  for (int i = 0; i < 200; ++i) {
    v1::ReadEventsResponse chunk = random.NextChunk();
    if (i % 2 == 1 && chunk.events_size() > 0) {
      (*chunk.mutable_events(0)->mutable_fields())["tags"]
          .mutable_list_value()
          ->add_values()
          ->set_int64_value(i);
    }
    const std::string bytes = chunk.SerializeAsString();
    const int64_t parsed_before = reader.parsed_chunks();
    ASSERT_TRUE(reader.Read(bytes).ok()) << i;
    EXPECT_EQ(reader.parsed_chunks() - parsed_before,
              i % 2 == 1 && chunk.events_size() > 0 ? 1 : 0)
        << i;
    ExpectReadsAsProtobuf(bytes, reader.events(), reader.watermark(), i);
  }
  EXPECT_GT(reader.parsed_chunks(), 50);
  const absl::Status s = reader.Read(
      "\x0a\x05"
      "ab");  // cut short
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_TRUE(reader.events().events.empty());
}

// Bytes of one event: `body` inside an IngestRequest's events field.
std::string OneEvent(const std::string& body) {
  std::string r;
  wire::PutBytesField(&r, v1::IngestRequest::kStreamFieldNumber, "orders");
  wire::PutBytesField(&r, v1::IngestRequest::kEventsFieldNumber, body);
  return r;
}

std::string Entry(const std::string& name, const std::string& value) {
  std::string e;
  wire::PutBytesField(&e, 1, name);
  wire::PutBytesField(&e, 2, value);
  return e;
}

std::string DoubleValue(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof(bits));
  std::string v;
  wire::PutFixed64Field(&v, v1::Value::kDoubleValueFieldNumber, bits);
  return v;
}

std::string StringValue(const std::string& s) {
  std::string v;
  wire::PutBytesField(&v, v1::Value::kStringValueFieldNumber, s);
  return v;
}

// An order's event body: id, entity, time, and the required fields.
std::string OrderBody() {
  std::string e;
  wire::PutBytesField(&e, v1::Event::kEventIdFieldNumber, "o-1");
  wire::PutBytesField(&e, v1::Event::kEntityFieldNumber, "u1");
  std::string t;
  wire::PutVarintField(&t, 1, 1795478400);
  wire::PutBytesField(&e, v1::Event::kEventTimeFieldNumber, t);
  std::string q;
  wire::PutVarintField(&q, v1::Value::kInt64ValueFieldNumber, 2);
  wire::PutBytesField(&e, v1::Event::kFieldsFieldNumber, Entry("quantity", q));
  wire::PutBytesField(&e, v1::Event::kFieldsFieldNumber,
                      Entry("category", StringValue("books")));
  return e;
}

TEST(IngestBatchTest, HandsUncommonFormsToProtobuf) {
  IngestBatch read;
  struct Case {
    const char* what;
    std::string bytes;
    bool protobuf_reads;
  };
  std::string list;
  wire::PutBytesField(&list, v1::Value::kListValueFieldNumber, "");
  std::string two_kinds = StringValue("a") + DoubleValue(1);
  std::string unknown_in_time;
  wire::PutVarintField(&unknown_in_time, 3, 1);
  std::string long_varint(11, '\x80');
  long_varint.back() = 0;
  const std::vector<Case> cases = {
      {"an unknown request field",
       [] {
         std::string r = OneEvent(OrderBody());
         wire::PutVarintField(&r, 9, 1);
         return r;
       }(),
       true},
      {"an unknown event field",
       [] {
         std::string e = OrderBody();
         wire::PutBytesField(&e, 9, "x");
         return OneEvent(e);
       }(),
       true},
      {"an unknown timestamp field", OneEvent([&] {
         std::string e;
         wire::PutBytesField(&e, v1::Event::kEventTimeFieldNumber,
                             unknown_in_time);
         return e;
       }()),
       true},
      {"a list value",
       OneEvent(OrderBody() +
                [&] {
                  std::string e;
                  wire::PutBytesField(&e, v1::Event::kFieldsFieldNumber,
                                      Entry("coupon", list));
                  return e;
                }()),
       true},
      {"two members of the oneof",
       OneEvent(OrderBody() +
                [&] {
                  std::string e;
                  wire::PutBytesField(&e, v1::Event::kFieldsFieldNumber,
                                      Entry("amount", two_kinds));
                  return e;
                }()),
       true},
      {"an event id sent twice",
       OneEvent(OrderBody() +
                [] {
                  std::string e;
                  wire::PutBytesField(&e, v1::Event::kEventIdFieldNumber,
                                      "o-2");
                  return e;
                }()),
       true},
      {"a field of the wrong wire type",
       OneEvent(OrderBody() +
                [] {
                  std::string e;
                  wire::PutVarintField(&e, v1::Event::kEntityFieldNumber, 5);
                  return e;
                }()),
       true},
      {"a varint of 11 bytes",
       OneEvent(OrderBody() + std::string(1, wire::Tag(5, wire::kVarint)) +
                long_varint),
       false},
      {"an event id that is not UTF-8", OneEvent([] {
         std::string e;
         wire::PutBytesField(&e, v1::Event::kEventIdFieldNumber, "\xff");
         return e;
       }()),
       false},
      {"a field name that is not UTF-8", OneEvent([] {
         std::string e;
         wire::PutBytesField(&e, v1::Event::kFieldsFieldNumber,
                             Entry("\xc3", StringValue("x")));
         return e;
       }()),
       false},
      {"a string value that is not UTF-8", OneEvent([] {
         std::string e;
         wire::PutBytesField(&e, v1::Event::kFieldsFieldNumber,
                             Entry("coupon", StringValue("\xed\xa0\x80")));
         return e;
       }()),
       false},
      {"a truncated event", OneEvent(OrderBody()).substr(0, 20), false},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(ReadIngestBatch(c.bytes, &read)) << c.what;
    Flat ignored;
    EXPECT_EQ(ProtobufReads(c.bytes, &ignored), c.protobuf_reads) << c.what;
  }
  // And the plain form is read.
  EXPECT_TRUE(ReadIngestBatch(OneEvent(OrderBody()), &read));
}

class IngestBatchPrepareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = EventStore::Open(dir_.path(), {});
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    registry_ = std::make_unique<Registry>(store_.get());
    ASSERT_TRUE(registry_->Apply(testing::OrdersDefinitions(), false, "").ok());
    schema_ = registry_->FindStream("orders");
    ASSERT_NE(schema_, nullptr);
  }

  // Prepares `bytes` read by hand and parsed by protobuf; expects both to
  // read them and to make the same events and errors (a row's errors
  // compared as a set: a parsed map has its own order).
  void PrepareBoth(const std::string& bytes, std::vector<PendingEvent>* out,
                   std::vector<v1::RowError>* errors) {
    IngestBatch read;
    ASSERT_TRUE(ReadIngestBatch(bytes, &read));
    PrepareEvents(*schema_, read, IngestLimits(), out, errors);
    v1::IngestRequest request;
    ASSERT_TRUE(request.ParseFromString(bytes));
    std::vector<PendingEvent> parsed_out;
    std::vector<v1::RowError> parsed_errors;
    PrepareEvents(*schema_, request.events(), IngestLimits(), &parsed_out,
                  &parsed_errors);
    ASSERT_EQ(out->size(), parsed_out.size());
    for (size_t i = 0; i < out->size(); ++i) {
      EXPECT_EQ((*out)[i].event_id, parsed_out[i].event_id);
      EXPECT_EQ((*out)[i].value, parsed_out[i].value);
      EXPECT_EQ((*out)[i].content_hash, parsed_out[i].content_hash);
    }
    auto set = [](const std::vector<v1::RowError>& v) {
      std::vector<std::string> s;
      for (const auto& e : v) s.push_back(testing::Canonical(e));
      std::sort(s.begin(), s.end());
      return s;
    };
    EXPECT_EQ(set(*errors), set(parsed_errors));
  }

  testing::TempDir dir_;
  std::unique_ptr<EventStore> store_;
  std::unique_ptr<Registry> registry_;
  std::shared_ptr<const StreamSchema> schema_;
};

// A name sent twice counts once, with its last value, as in a protobuf
// map: an earlier wrong value is no error, an earlier right one is
// replaced, and an unknown name is one error.
TEST_F(IngestBatchPrepareTest, ANameSentTwiceCountsOnceWithItsLastValue) {
  auto twice = [](const std::string& name, const std::string& first,
                  const std::string& last) {
    std::string e = OrderBody();
    wire::PutBytesField(&e, v1::Event::kFieldsFieldNumber, Entry(name, first));
    wire::PutBytesField(&e, v1::Event::kFieldsFieldNumber, Entry(name, last));
    return OneEvent(e);
  };
  std::vector<PendingEvent> out;
  std::vector<v1::RowError> errors;
  PrepareBoth(twice("amount", StringValue("12.5"), DoubleValue(12.5)), &out,
              &errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(out.size(), 1u);
  std::vector<PendingEvent> single;
  std::vector<v1::RowError> none;
  v1::Event order =
      testing::Order("o-1", "u1", 1795478400LL * 1000000, 12.5, 2, "books");
  google::protobuf::RepeatedPtrField<v1::Event> events;
  *events.Add() = order;
  PrepareEvents(*schema_, events, IngestLimits(), &single, &none);
  ASSERT_EQ(single.size(), 1u);
  EXPECT_EQ(out[0].content_hash, single[0].content_hash);

  out.clear();
  PrepareBoth(twice("amount", DoubleValue(1), StringValue("x")), &out, &errors);
  EXPECT_TRUE(out.empty());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].field(), "amount");
  EXPECT_NE(errors[0].reason().find("got STRING"), std::string::npos);

  errors.clear();
  PrepareBoth(twice("amount", DoubleValue(1), ""), &out, &errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].reason().find("required field 'amount' is null"),
            std::string::npos);

  errors.clear();
  PrepareBoth(twice("price", DoubleValue(1), DoubleValue(2)), &out, &errors);
  // The unknown name once; amount is missing.
  ASSERT_EQ(errors.size(), 2u);
}

}  // namespace
}  // namespace rawfeat
