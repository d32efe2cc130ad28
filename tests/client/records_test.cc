#include "client/records.h"

#include <algorithm>
#include <limits>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "server/common/ingest_batch.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

std::vector<std::vector<std::string>> ReadAll(const std::string& text,
                                              absl::Status* error = nullptr) {
  std::istringstream in(text);
  CsvReader r(&in);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  while (r.Next(&row)) rows.push_back(row);
  if (error != nullptr) *error = r.error();
  return rows;
}

using Rows = std::vector<std::vector<std::string>>;

TEST(CsvReaderTest, Rfc4180Cases) {
  EXPECT_EQ(ReadAll("a,b\n1,2\n"), (Rows{{"a", "b"}, {"1", "2"}}));
  EXPECT_EQ(ReadAll("a,b\r\n1,2\r\n"), (Rows{{"a", "b"}, {"1", "2"}}));
  EXPECT_EQ(ReadAll("a,b"), (Rows{{"a", "b"}}));  // no final newline
  EXPECT_EQ(ReadAll("\"x,y\",z\n"), (Rows{{"x,y", "z"}}));
  EXPECT_EQ(ReadAll("\"say \"\"hi\"\"\",2\n"), (Rows{{"say \"hi\"", "2"}}));
  EXPECT_EQ(ReadAll("\"two\nlines\",2\n"), (Rows{{"two\nlines", "2"}}));
  EXPECT_EQ(ReadAll(",,\n"), (Rows{{"", "", ""}}));
  EXPECT_EQ(ReadAll("\"\",x\n"), (Rows{{"", "x"}}));
}

TEST(CsvReaderTest, TracksRecordLines) {
  std::istringstream in("h\n\"a\nb\"\nc\n");
  CsvReader r(&in);
  std::vector<std::string> row;
  ASSERT_TRUE(r.Next(&row));
  EXPECT_EQ(r.record_line(), 1);
  ASSERT_TRUE(r.Next(&row));
  EXPECT_EQ(r.record_line(), 2);
  ASSERT_TRUE(r.Next(&row));
  EXPECT_EQ(r.record_line(), 4);
}

TEST(CsvReaderTest, MalformedRecords) {
  absl::Status err;
  ReadAll("a,\"open\n", &err);
  EXPECT_FALSE(err.ok());
  EXPECT_NE(err.message().find("line 1"), std::string::npos);
  ReadAll("ok\n\"x\"y,1\n", &err);
  EXPECT_FALSE(err.ok());
  EXPECT_NE(err.message().find("line 2"), std::string::npos) << err.message();
}

// A stream that hands out at most `piece` bytes per read.
class TrickleBuf : public std::streambuf {
 public:
  TrickleBuf(std::string text, size_t piece)
      : text_(std::move(text)), piece_(piece) {}

 protected:
  std::streamsize xsgetn(char* out, std::streamsize n) override {
    const size_t k =
        std::min({static_cast<size_t>(n), piece_, text_.size() - at_});
    text_.copy(out, k, at_);
    at_ += k;
    return static_cast<std::streamsize>(k);
  }
  int_type underflow() override {
    return at_ < text_.size() ? traits_type::to_int_type(text_[at_])
                              : traits_type::eof();
  }

 private:
  std::string text_;
  size_t piece_;
  size_t at_ = 0;
};

// Random records (cells with commas, quotes, CR and LF, empty, quoted or
// not, LF or CRLF line ends, one cell longer than any buffer), read with
// reads from 1 byte up, so every record, cell, escape and line end lies
// across a chunk edge somewhere: each comes back as written, with its line.
TEST(CsvReaderTest, RecordsAcrossChunkEdges) {
  std::mt19937_64 rng(11);
  const std::vector<std::string> pieces = {
      "a", "bc", ",", "\"", "\n", "\r", " ", "\xc3\xa9", "x\"\"y"};
  auto random_cell = [&]() {
    std::string cell;
    const int n = static_cast<int>(rng() % 6);
    for (int i = 0; i < n; ++i) cell += pieces[rng() % pieces.size()];
    return cell;
  };
  Rows want;
  std::vector<std::vector<bool>> want_quoted;
  std::vector<int64_t> want_lines;
  std::string text;
  int64_t line = 1;
  for (int r = 0; r < 300; ++r) {
    std::vector<std::string> row;
    std::vector<bool> quoted;
    const int cells = 1 + static_cast<int>(rng() % 5);
    for (int c = 0; c < cells; ++c) {
      std::string cell =
          r == 150 && c == 0 ? std::string(5000, 'L') : random_cell();
      const bool needs_quotes =
          cell.find_first_of(",\"\r\n") != std::string::npos;
      const bool quote = needs_quotes || rng() % 3 == 0;
      if (c > 0) text += ",";
      if (quote) {
        text += "\"";
        for (char ch : cell)
          text += ch == '"' ? std::string("\"\"") : std::string(1, ch);
        text += "\"";
      } else {
        text += cell;
      }
      row.push_back(cell);
      // An unquoted empty cell is a null, a quoted one the empty string.
      quoted.push_back(quote);
    }
    // A lone empty unquoted cell would be a blank line: make it quoted.
    if (cells == 1 && row[0].empty() && !quoted[0]) {
      text += "\"\"";
      quoted[0] = true;
    }
    want.push_back(row);
    want_quoted.push_back(quoted);
    want_lines.push_back(line);
    for (const std::string& cell : row) {
      line += std::count(cell.begin(), cell.end(), '\n');
    }
    text += rng() % 2 == 0 ? "\n" : "\r\n";
    ++line;
  }
  for (size_t chunk : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{64},
                       size_t{4096}, size_t{1} << 18}) {
    // Reads of 1-`chunk` bytes: edges fall everywhere, whatever the
    // buffer has grown to.
    TrickleBuf trickle(text, chunk);
    std::istream in(&trickle);
    CsvReader reader(&in, chunk);
    std::vector<absl::string_view> cells;
    size_t r = 0;
    while (reader.Next(&cells)) {
      ASSERT_LT(r, want.size()) << "chunk " << chunk;
      ASSERT_EQ(std::vector<std::string>(cells.begin(), cells.end()), want[r])
          << "chunk " << chunk << " record " << r;
      EXPECT_EQ(reader.quoted(), want_quoted[r]) << "chunk " << chunk;
      EXPECT_EQ(reader.record_line(), want_lines[r]) << "chunk " << chunk;
      ++r;
    }
    EXPECT_TRUE(reader.error().ok()) << reader.error();
    EXPECT_EQ(r, want.size()) << "chunk " << chunk;
  }
  // Cut inside a quoted cell: an error naming the record's line.
  for (size_t chunk : {size_t{1}, size_t{5}, size_t{1} << 18}) {
    std::istringstream in("a,b\n\"c\nd\"\"e");
    CsvReader reader(&in, chunk);
    std::vector<absl::string_view> cells;
    ASSERT_TRUE(reader.Next(&cells));
    EXPECT_FALSE(reader.Next(&cells));
    EXPECT_NE(reader.error().message().find("line 2: unterminated"),
              std::string::npos)
        << reader.error();
  }
}

TEST(CsvEscapeTest, RoundTrips) {
  for (const std::string s : {"plain", "a,b", "q\"q", "multi\nline", ""}) {
    auto rows = ReadAll(CsvEscape(s) + ",x\n");
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0][0], s);
  }
}

// An empty string and a null are different cells, written and read back:
// "" is the empty string, an empty cell is null.
TEST(RecordMapperTest, EmptyStringAndNullRoundTrip) {
  RecordMapper m(testing::OrdersStream(), TimeUnit::kNone);
  ASSERT_TRUE(m.SetHeader({"event_id", "user_id", "order_time", "amount",
                           "quantity", "category", "coupon", "is_gift"})
                  .ok());
  for (const bool empty_coupon : {false, true}) {
    v1::Event e = testing::Order("o1", "u1", 1795478400LL * 1000000, 120);
    if (empty_coupon) (*e.mutable_fields())["coupon"].set_string_value("");
    const std::string row = m.CsvRow(e);
    EXPECT_EQ(row, absl::StrCat("o1,u1,2026-11-24T00:00:00Z,120.0,1,books,",
                                empty_coupon ? "\"\"" : "", ","));
    std::istringstream in(row + "\n");
    CsvReader reader(&in);
    std::vector<std::string> cells;
    ASSERT_TRUE(reader.Next(&cells));
    auto back = m.FromCsv(cells, 1, &reader.quoted());
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(testing::Canonical(*back), testing::Canonical(e)) << row;
  }
  v1::Value empty, null, whole, list;
  empty.set_string_value("");
  whole.set_double_value(120);
  list.mutable_list_value()->add_values()->set_double_value(2);
  EXPECT_EQ(CsvCell(empty), "\"\"");
  EXPECT_EQ(CsvCell(null), "");
  EXPECT_EQ(CsvCell(whole), "120.0");
  EXPECT_EQ(CsvCell(list), "[2.0]");
}

// The wire bytes a CSV row is sent as parse, by protobuf's own parser, to
// exactly the event FromCsv builds (deterministic serialization compared,
// so a double's sign and bits count), for rows with every kind of cell.
TEST(RecordMapperTest, WireBytesParseAsTheEvent) {
  RecordMapper m(testing::OrdersStream(), TimeUnit::kMillis);
  ASSERT_TRUE(m.SetHeader({"event_id", "user_id", "order_time", "amount",
                           "quantity", "category", "coupon", "is_gift"})
                  .ok());
  std::mt19937_64 rng(7);
  auto one_of = [&](std::vector<std::string> options) {
    return options[rng() % options.size()];
  };
  const std::vector<std::string> doubles = {
      "0", "-0.0", "1.5", "-2.25e-3", "1e300", "-1.7976931348623157e308",
      "4.9e-324", "120", "0.1", "123456789.123456789", "ten"};
  const std::vector<std::string> ints = {
      "0", "-1", "1", "9223372036854775807", "-9223372036854775808", "300",
      "-129"};
  const std::vector<std::string> times = {
      "2026-11-24T09:00:00Z",     "1969-12-31T23:59:59.9999995Z",
      "0001-01-01T00:00:00Z",     "9999-12-31T23:59:59.999999Z",
      "2026-11-24T09:00:00+09:00", "2026-11-24t09:00:00.5-03:30",
      "1700000000123",            "-5ms",
      "1700000000s"};
  int rows = 0;
  for (int i = 0; i < 3000; ++i) {
    std::vector<std::string> cells = {
        one_of({"", "o-1", "id with spaces", absl::StrCat("o-", rng())}),
        one_of({"u1", "caf\xc3\xa9", std::string(300, 'x'), "a,b"}),
        one_of(times),
        one_of(doubles),
        one_of(ints),
        one_of({"", "books", "\xf0\x9f\x99\x82 emoji", "quote\"d"}),
        one_of({"", "CPN-1"}),
        one_of({"", "true", "FALSE", "1", "0"})};
    // Empty category and coupon cells quoted ("", the empty string) or not
    // (null), at random.
    std::vector<bool> quoted(cells.size(), false);
    quoted[5] = rng() % 2 == 0;
    quoted[6] = rng() % 2 == 0;
    auto event = m.FromCsv(cells, i + 2, &quoted);
    std::string request = "ignored prefix";
    const std::string before = request;
    const std::vector<absl::string_view> views(cells.begin(), cells.end());
    absl::Status appended =
        m.AppendCsvToRequest(views, i + 2, &quoted, &request);
    ASSERT_EQ(appended.ok(), event.ok()) << appended << " / " << event.status();
    if (!event.ok()) {
      EXPECT_EQ(appended.message(), event.status().message());
      EXPECT_EQ(request, before);  // unchanged on error
      continue;
    }
    v1::IngestRequest parsed;
    ASSERT_TRUE(parsed.ParseFromString(request.substr(before.size())));
    ASSERT_EQ(parsed.events_size(), 1);
    ASSERT_EQ(testing::Canonical(parsed.events(0)), testing::Canonical(*event))
        << parsed.events(0).DebugString() << " vs " << event->DebugString();
    // The server reads these bytes by hand, not through protobuf's parser
    // (common/ingest_batch.h): they are in the form it reads.
    IngestBatch read;
    const std::string bytes = request.substr(before.size());
    ASSERT_TRUE(ReadIngestBatch(bytes, &read));
    ASSERT_EQ(read.events.size(), 1u);
    EXPECT_EQ(read.events[0].entity, parsed.events(0).entity());
    EXPECT_EQ(read.events[0].entries,
              static_cast<size_t>(parsed.events(0).fields_size()));
    ++rows;
  }
  // Rows of both kinds were drawn (an amount of "ten" is refused).
  EXPECT_GT(rows, 1000);
  EXPECT_LT(rows, 3000);

  // The same mapper bound to a header without event ids writes none,
  // whatever the rows before had.
  std::string request;
  ASSERT_TRUE(m.AppendCsvToRequest({"id-1", "u1", "2026-11-24T09:00:00Z", "1",
                                    "2", "c", "", ""},
                                   1, nullptr, &request)
                  .ok());
  request.clear();
  ASSERT_TRUE(m.SetHeader({"user_id", "order_time", "amount", "quantity",
                           "category"})
                  .ok());
  ASSERT_TRUE(m.AppendCsvToRequest({"u9", "5ms", "1", "2", "c"}, 2, nullptr,
                                   &request)
                  .ok());
  v1::IngestRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(request));
  ASSERT_EQ(parsed.events_size(), 1);
  EXPECT_EQ(parsed.events(0).event_id(), "");
  EXPECT_EQ(parsed.events(0).entity(), "u9");
}

TEST(RecordMapperTest, CsvTypesAndEmptyCells) {
  RecordMapper m(testing::OrdersStream(), TimeUnit::kNone);
  ASSERT_TRUE(m.SetHeader({"user_id", "order_time", "amount", "quantity",
                           "category", "coupon", "is_gift"})
                  .ok());
  auto e = m.FromCsv(
      {"u1", "2026-11-24T09:00:00+09:00", "1.5", "2", "", "", "TRUE"}, 7);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->entity(), "u1");
  EXPECT_EQ(e->event_time().seconds(), 1795478400);
  EXPECT_EQ(e->fields().at("amount").double_value(), 1.5);
  EXPECT_EQ(e->fields().at("quantity").int64_value(), 2);
  // Required STRING: empty string. Optional: absent.
  EXPECT_EQ(e->fields().at("category").string_value(), "");
  EXPECT_FALSE(e->fields().contains("coupon"));
  EXPECT_TRUE(e->fields().at("is_gift").bool_value());

  auto bad = m.FromCsv({"u1", "2026-11-24T09:00:00Z", "", "2", "c", "", ""}, 9);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 9: column 'amount': required"),
            std::string::npos)
      << bad.status().message();
  bad = m.FromCsv({"u1", "2026-11-24T09:00:00Z", "x", "2", "c", "", ""}, 3);
  EXPECT_NE(bad.status().message().find("'x' is not a DOUBLE"),
            std::string::npos);
  bad = m.FromCsv({"u1", "1700000000", "1", "2", "c", "", ""}, 3);
  EXPECT_NE(bad.status().message().find("column 'order_time'"),
            std::string::npos);
  bad = m.FromCsv({"u1", "2026-11-24T09:00:00Z"}, 4);
  EXPECT_NE(bad.status().message().find("line 4: has 2 columns"),
            std::string::npos);
}

// A Latin-1 file: a row error naming line and column (so --skip-invalid
// skips it), not a request the server cannot parse.
TEST(RecordMapperTest, CellsThatAreNotUtf8AreRowErrors) {
  RecordMapper m(testing::OrdersStream(), TimeUnit::kNone);
  ASSERT_TRUE(m.SetHeader({"user_id", "order_time", "amount", "quantity",
                           "category", "coupon", "is_gift"})
                  .ok());
  for (const char* bad_text : {"caf\xe9", "\xc0\xaf", "\xed\xa0\x80",
                               "\xf4\x90\x80\x80", "ab\xe2\x82"}) {
    auto bad = m.FromCsv(
        {"u1", "2026-11-24T09:00:00Z", "1", "2", bad_text, "", ""}, 5);
    ASSERT_FALSE(bad.ok()) << bad_text;
    EXPECT_NE(bad.status().message().find(
                  "line 5: column 'category': not valid UTF-8"),
              std::string::npos)
        << bad.status().message();
  }
  auto entity =
      m.FromCsv({"\xff", "2026-11-24T09:00:00Z", "1", "2", "c", "", ""}, 6);
  EXPECT_NE(entity.status().message().find("column 'user_id'"),
            std::string::npos);
  // Well-formed multi-byte text passes.
  auto ok = m.FromCsv({"u1", "2026-11-24T09:00:00Z", "1", "2",
                       "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82", "", ""},
                      7);
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST(RecordMapperTest, HeaderErrors) {
  RecordMapper m(testing::OrdersStream(), TimeUnit::kNone);
  EXPECT_NE(m.SetHeader({"user_id", "order_time", "price"})
                .message()
                .find("column 'price'"),
            std::string::npos);
  EXPECT_NE(m.SetHeader({"user_id", "amount"}).message().find("time column"),
            std::string::npos);
  EXPECT_NE(m.SetHeader({"user_id", "order_time", "amount", "amount"})
                .message()
                .find("twice"),
            std::string::npos);
}

TEST(RecordMapperTest, JsonLinesRoundTrip) {
  RecordMapper m(testing::OrdersStream(), TimeUnit::kSeconds);
  auto e =
      m.FromJson(R"({"event_id":"o1","user_id":"u","order_time":1700000000,)"
                 R"("amount":3,"quantity":1,"category":"c","coupon":null})",
                 1);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->fields().at("amount").double_value(), 3.0);
  EXPECT_FALSE(e->fields().contains("coupon"));
  auto back = m.FromJson(m.JsonLine(*e), 2);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(testing::Canonical(*back), testing::Canonical(*e));
  EXPECT_NE(m.FromJson("{not json", 5).status().message().find("line 5"),
            std::string::npos);
  // A number no double holds is a row error (it once threw out of the CLI).
  EXPECT_EQ(m.FromJson(R"({"amount":1e400})", 7).status().message(),
            "line 7: invalid JSON: number overflow parsing '1e400'");
  EXPECT_NE(m.FromJson(R"({"quantity":"1"})", 6)
                .status()
                .message()
                .find("want INT64"),
            std::string::npos);
}

// JSON lines, simple and not (escapes, \u, nested values, duplicate and
// escaped keys, numbers at and past int64 and double, bad UTF-8, a BOM,
// broken syntax): the bytes AppendJsonToRequest appends parse, by
// protobuf's parser and the server's, to exactly the event FromJson
// builds, and where FromJson refuses a line it refuses it with the same
// message, appending nothing.
TEST(RecordMapperTest, JsonWireBytesAreFromJsonsEvent) {
  std::mt19937_64 rng(23);
  auto pick = [&](const std::vector<std::string>& options) {
    return options[rng() % options.size()];
  };
  const std::vector<std::string> strings = {
      R"("u1")",           R"("")",           R"("caf\u00e9")",
      "\"caf\xc3\xa9\"",   R"("a\"b\\c\/d")", R"("tab\there\nnl")",
      R"("\ud83d\ude00")", "\"bad \xff\"",    "\"ctl \x01\"",
      R"("unterminated)",  R"("bad \x esc")", R"("\b\f\r")"};
  const std::vector<std::string> numbers = {"0",
                                            "-0",
                                            "7",
                                            "-12",
                                            "1.5",
                                            "-2.25e-3",
                                            "1E+2",
                                            "1e400",
                                            "9223372036854775807",
                                            "9223372036854775808",
                                            "-9223372036854775808",
                                            "-9223372036854775809",
                                            "4.9e-324",
                                            "01",
                                            "1.",
                                            ".5",
                                            "+1",
                                            "1e",
                                            "-",
                                            "123456789012345678901234567890"};
  const std::vector<std::string> times = {R"("2026-11-24T09:00:00Z")",
                                          R"("2026-11-24T09:00:00.5+09:00")",
                                          R"("1700000000s")",
                                          R"("5ms")",
                                          "1700000000",
                                          "-5",
                                          "1.7e9",
                                          R"("not a time")",
                                          "null",
                                          R"(" 2026-11-24T09:00:00Z ")"};
  const std::vector<std::string> literals = {
      "true", "false", "null", "nul", "True", "[1,2]", R"({"a":1})"};
  auto value_for = [&](const std::string& key) {
    // Mostly the right kind for the key, sometimes any kind.
    if (rng() % 5 == 0) {
      return pick({pick(strings), pick(numbers), pick(literals)});
    }
    if (key == "order_time") return pick(times);
    if (key == "amount" || key == "quantity") return pick(numbers);
    if (key == "is_gift") return pick(literals);
    return pick(strings);
  };
  const std::vector<std::string> keys = {
      "event_id", "user_id", "order_time", "amount", "quantity",
      "category", "coupon",  "is_gift",    "seq",    "unknown"};
  const std::vector<std::string> spaces = {"", "", "", " ", "\t", " \r"};
  RecordMapper m(testing::OrdersStream(), TimeUnit::kSeconds);
  int ok_lines = 0;
  for (int n = 0; n < 20000; ++n) {
    std::string line = rng() % 200 == 0 ? "\xef\xbb\xbf" : "";
    line += pick(spaces) + "{";
    const int fields = static_cast<int>(rng() % 9);
    for (int f = 0; f < fields; ++f) {
      std::string key = pick(keys);
      std::string value = value_for(key);
      if (rng() % 50 == 0) key = "user\\u005fid";  // "user_id", escaped
      if (f > 0) line += pick(spaces) + "," + pick(spaces);
      line += "\"" + key + "\"" + pick(spaces) + ":" + pick(spaces) + value;
    }
    if (rng() % 100 == 0) line += ",";
    line += pick(spaces) + "}" + pick(spaces);
    if (rng() % 100 == 0) line += " x";
    auto event = m.FromJson(line, n + 1);
    std::string request = "prefix";
    absl::Status appended = m.AppendJsonToRequest(line, n + 1, &request);
    ASSERT_EQ(appended.ok(), event.ok()) << line << "\n"
                                         << appended << " / " << event.status();
    if (!event.ok()) {
      EXPECT_EQ(appended.message(), event.status().message()) << line;
      EXPECT_EQ(request, "prefix") << line;
      continue;
    }
    const std::string bytes = request.substr(6);
    v1::IngestRequest parsed;
    ASSERT_TRUE(parsed.ParseFromString(bytes)) << line;
    ASSERT_EQ(parsed.events_size(), 1) << line;
    ASSERT_EQ(testing::Canonical(parsed.events(0)), testing::Canonical(*event))
        << line << "\n"
        << parsed.events(0).DebugString() << " vs " << event->DebugString();
    IngestBatch read;
    ASSERT_TRUE(ReadIngestBatch(bytes, &read)) << line;
    ++ok_lines;
  }
  // Both paths ran: most accepted lines in one pass, the rest (and every
  // refused one) through FromJson.
  EXPECT_GT(ok_lines, 1000);
  EXPECT_GT(m.simple_json_lines(), ok_lines / 2);
  EXPECT_LT(m.simple_json_lines(), ok_lines);
}

TEST(FormatDoubleTest, ShortestRoundTrip) {
  EXPECT_EQ(FormatDouble(0.1), "0.1");
  // Never mistaken for an integer: pandas reads the column as float64.
  EXPECT_EQ(FormatDouble(100), "100.0");
  EXPECT_EQ(FormatDouble(-120), "-120.0");
  EXPECT_EQ(FormatDouble(0), "0.0");
  EXPECT_EQ(FormatDouble(1e300), "1e+300");
  EXPECT_EQ(FormatDouble(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(std::stod(FormatDouble(1.0 / 3)), 1.0 / 3);
}

}  // namespace
}  // namespace rawfeat
