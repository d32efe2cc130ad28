#ifndef RAWFEAT_CLIENT_RECORDS_H_
#define RAWFEAT_CLIENT_RECORDS_H_

// File formats of the CLI: CSV (RFC 4180, header row) and JSON Lines, to and
// from rawfeat events, typed by the stream definition. Column names: the
// stream's entity_field and time_field, an optional `event_id`, and the
// stream's fields. Not thread-safe per object; functions are pure.

#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/common/field_value.h"
#include "server/common/time_util.h"

namespace rawfeat {

// Reads RFC 4180 records: comma-separated, double-quoted fields with ""
// escapes, embedded commas and newlines, LF or CRLF line ends.
class CsvReader {
 public:
  // Reads `in` `chunk_bytes` at a time (tests pass small ones).
  explicit CsvReader(std::istream* in, size_t chunk_bytes = size_t{1} << 18)
      : in_(in), chunk_(chunk_bytes < 1 ? 1 : chunk_bytes) {}
  // Reads the next record into `cells`: views into the reader's buffer,
  // valid until the next call (quoted cells unescaped in place). Returns
  // false at end of input. On a malformed record (unterminated quote, text
  // after a closing quote) sets error() and returns false. The stream is
  // read ahead in large chunks: its position is past the records returned.
  bool Next(std::vector<absl::string_view>* cells);
  // The same, copied into strings.
  bool Next(std::vector<std::string>* fields);
  // Line number (1-based) where the last record returned started.
  int64_t record_line() const { return record_line_; }
  // Whether each field of the last record was quoted: a quoted empty field
  // ("") is an empty string, an unquoted one is a null.
  const std::vector<bool>& quoted() const { return quoted_; }
  const absl::Status& error() const { return error_; }

 private:
  // Makes buf_[*base + at] readable, reading more of the stream if needed:
  // first moves the record being read (from *base) to the buffer's front,
  // doubling the buffer when that record fills it. Offsets relative to
  // *base stay valid. False at end of input.
  bool Have(size_t* base, size_t at);

  std::istream* in_;
  size_t chunk_;
  std::string buf_;  // read ahead; [pos_, end_) not yet parsed
  size_t pos_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
  int64_t line_ = 1;
  int64_t record_line_ = 0;
  std::vector<bool> quoted_;
  std::vector<std::pair<size_t, size_t>> spans_;  // the record's cells
  std::vector<absl::string_view> views_;  // for Next(std::vector<string>*)
  absl::Status error_;
};

// Quotes `s` for CSV when it holds a comma, quote, CR or LF.
std::string CsvEscape(absl::string_view s);

// Maps CSV/JSON columns onto an event of one stream.
class RecordMapper {
 public:
  // `time_unit` is how bare integers in the time column are read (kNone:
  // they are refused).
  RecordMapper(v1::StreamDef stream, TimeUnit time_unit);

  // Binds a CSV header. Errors: INVALID_ARGUMENT naming an unknown column, a
  // duplicate one, or a missing entity/time column.
  absl::Status SetHeader(const std::vector<std::string>& header);

  // One CSV record -> event. Empty cell: null for an optional field, "" for
  // a required STRING, an error for any other required field; a quoted
  // empty cell (`quoted`, from CsvReader::quoted(); null = none quoted) of
  // a STRING field is the empty string.
  // Errors: INVALID_ARGUMENT "line N: column C: reason".
  absl::StatusOr<v1::Event> FromCsv(
      const std::vector<std::string>& cells, int64_t line,
      const std::vector<bool>* quoted = nullptr) const;

  // FromCsv written straight as protobuf wire bytes: appends the event to
  // `out` as one `events` entry of an IngestRequest, so a batch is these
  // entries plus the request's other fields, with no message per row
  // (building, sizing, serializing and freeing a map<string, Value> per row
  // was two thirds of a CSV ingest's client CPU). The bytes parse as the
  // event FromCsv returns. Same checks and errors; `out` is unchanged on
  // error.
  absl::Status AppendCsvToRequest(absl::Span<const absl::string_view> cells,
                                  int64_t line, const std::vector<bool>* quoted,
                                  std::string* out) const;

  // One JSON Lines object -> event (null = absent).
  // Errors: INVALID_ARGUMENT "line N: ...".
  absl::StatusOr<v1::Event> FromJson(absl::string_view text,
                                     int64_t line) const;

  // FromJson written straight as wire bytes, as AppendCsvToRequest does:
  // a flat object of strings, numbers, booleans and nulls is read in one
  // pass; anything else (escapes other than the short ones, \u, nested
  // values, duplicate keys, numbers outside int64 or double, errors of any
  // kind) goes through FromJson, so the event and every error are
  // FromJson's. `out` is unchanged on error.
  absl::Status AppendJsonToRequest(absl::string_view text, int64_t line,
                                   std::string* out) const;
  // Lines AppendJsonToRequest read in one pass, not through FromJson.
  int64_t simple_json_lines() const { return simple_json_lines_; }

  // Column names of CsvRow: event_id, entity, time, then the fields.
  std::vector<std::string> CsvHeader() const;
  std::string CsvRow(const v1::Event& e) const;
  // One JSON object with the same names, plus "seq".
  std::string JsonLine(const v1::Event& e) const;

  const v1::StreamDef& stream() const { return stream_; }

 private:
  // One CSV record, checked and typed; views into the cells. A value's
  // type is its field's.
  struct CsvValue : FieldValue {
    const v1::FieldDef* field = nullptr;
  };
  struct CsvEvent {
    absl::string_view event_id, entity;
    int64_t time_us = 0;
    bool has_time = true;  // a JSON line may lack it (the server says so)
    std::vector<CsvValue> values;  // present fields, in column order
  };
  // Appends `row` as one `events` entry of an IngestRequest.
  static void AppendEvent(const CsvEvent& row, std::string* out);
  // AppendJsonToRequest's one pass: false if the line is not the simple
  // case it reads (then FromJson decides), with `*row` unspecified.
  bool ReadSimpleJson(absl::string_view text, CsvEvent* row) const;
  // FromCsv's checks, into `*event`. Errors: FromCsv's.
  absl::Status ReadCsv(absl::Span<const absl::string_view> cells, int64_t line,
                       const std::vector<bool>* quoted, CsvEvent* event) const;
  // `cell` (not empty) as a value of `field`. Errors: INVALID_ARGUMENT
  // saying what the cell is not.
  static absl::Status ParseCell(const v1::FieldDef& field,
                                absl::string_view cell, CsvValue* value);

  v1::StreamDef stream_;
  TimeUnit time_unit_;
  // For each CSV column: -1 entity, -2 time, -3 event_id, else field index.
  std::vector<int> columns_;
  // AppendCsvToRequest's and AppendJsonToRequest's row, kept between rows;
  // a JSON line's unescaped strings.
  mutable CsvEvent scratch_row_;
  mutable std::string scratch_text_;
  mutable std::vector<bool> scratch_seen_;
  mutable int64_t simple_json_lines_ = 0;
};

// Shortest text that reads back as the same double.
// The shortest text that reads back as `d`, always with a decimal point or
// an exponent ("120.0", "1e+300"), so it is never mistaken for an integer;
// "inf", "-inf", "nan" as such.
std::string FormatDouble(double d);

// A feature value as JSON text: numbers, strings, booleans, lists as
// arrays, null for absent.
std::string ValueToJson(const v1::Value& v);
// One feature row as a JSON object: {"entity": ..., name: value, ...}.
std::string FeatureRowToJson(
    const google::protobuf::RepeatedPtrField<std::string>& names,
    const v1::FeatureRow& row);
// A label row with its features as one JSON object: label columns as
// strings (in order), then the features typed.
std::string LabeledRowToJson(
    const std::vector<std::string>& columns,
    const std::vector<std::string>& cells,
    const google::protobuf::RepeatedPtrField<std::string>& names,
    const google::protobuf::RepeatedPtrField<v1::Value>& values);
// A feature value for a CSV cell: like ValueToJson but null is empty and a
// string is bare.
std::string ValueToCell(const v1::Value& v);

// A value as one CSV cell, quoted as needed, typed so a reader can tell
// them apart: null is an empty cell and an empty string is "" (as
// PostgreSQL's CSV COPY writes them), a DOUBLE always has a decimal point
// or an exponent ("120.0"), a list is a JSON array.
std::string CsvCell(const v1::Value& v);

}  // namespace rawfeat

#endif  // RAWFEAT_CLIENT_RECORDS_H_
