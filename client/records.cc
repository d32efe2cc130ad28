#include "client/records.h"

#include <cassert>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <streambuf>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/wire.h"

namespace rawfeat {

// ------------------------------------------------------------------ CSV

bool CsvReader::Have(size_t* base, size_t at) {
  while (*base + at >= end_) {
    if (eof_) return false;
    if (*base > 0) {
      // The records before this one are done with.
      std::memmove(&buf_[0], &buf_[*base], end_ - *base);
      end_ -= *base;
      *base = 0;
    }
    if (buf_.size() < chunk_) {
      buf_.resize(chunk_);
    } else if (end_ == buf_.size()) {
      buf_.resize(buf_.size() * 2);  // one record fills the buffer
    }
    const std::streamsize n = in_->rdbuf()->sgetn(
        &buf_[end_], static_cast<std::streamsize>(buf_.size() - end_));
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    end_ += static_cast<size_t>(n);
  }
  return true;
}

bool CsvReader::Next(std::vector<absl::string_view>* cells) {
  cells->clear();
  quoted_.clear();
  spans_.clear();
  if (!error_.ok()) return false;
  // Offsets below are relative to `base`, the record's first byte, which
  // Have() may move.
  size_t base = pos_;
  if (!Have(&base, 0)) return false;
  record_line_ = line_;
  size_t r = 0;      // next byte to read
  size_t start = 0;  // the current cell's first byte
  size_t w = 0;      // a quoted cell's unescaped end (written in place)
  enum { kStart, kUnquoted, kQuoted, kAfterQuote } state = kStart;
  auto end_cell = [&](size_t end, bool quoted) {
    spans_.emplace_back(start, end - start);
    quoted_.push_back(quoted);
  };
  while (true) {
    if (!Have(&base, r)) {
      if (state == kQuoted) {
        error_ = absl::InvalidArgumentError(
            absl::StrCat("line ", record_line_, ": unterminated quoted field"));
        return false;
      }
      end_cell(state == kAfterQuote ? w : r, state == kAfterQuote);
      break;
    }
    if (state == kUnquoted) {
      // The common case, byte by byte without the state switch.
      const char* p = buf_.data() + base;
      size_t i = r;
      const size_t stop = end_ - base;
      while (i < stop && p[i] != ',' && p[i] != '\n' && p[i] != '\r') ++i;
      r = i;
      if (r == stop) continue;  // read more
    }
    const char ch = buf_[base + r++];
    bool record_done = false;
    switch (state) {
      case kStart:
      case kUnquoted:
        if (ch == '"' && state == kStart) {
          state = kQuoted;
          start = w = r;
        } else if (ch == ',') {
          end_cell(r - 1, false);
          start = r;
          state = kStart;
        } else if (ch == '\n' || ch == '\r') {
          end_cell(r - 1, false);
          if (ch == '\r' && Have(&base, r) && buf_[base + r] == '\n') ++r;
          ++line_;
          record_done = true;
        } else {
          state = kUnquoted;
        }
        break;
      case kQuoted:
        if (ch == '"') {
          if (Have(&base, r) && buf_[base + r] == '"') {
            ++r;
            buf_[base + w++] = '"';
          } else {
            state = kAfterQuote;
          }
        } else {
          if (ch == '\n') ++line_;
          buf_[base + w++] = ch;
        }
        break;
      case kAfterQuote:
        if (ch == ',') {
          end_cell(w, true);
          start = r;
          state = kStart;
        } else if (ch == '\n' || ch == '\r') {
          end_cell(w, true);
          if (ch == '\r' && Have(&base, r) && buf_[base + r] == '\n') ++r;
          ++line_;
          record_done = true;
        } else {
          error_ = absl::InvalidArgumentError(
              absl::StrCat("line ", line_, ": text after a closing quote"));
          return false;
        }
        break;
    }
    if (record_done) break;
  }
  pos_ = base + r;
  cells->reserve(spans_.size());
  for (const auto& [at, size] : spans_) {
    cells->emplace_back(buf_.data() + base + at, size);
  }
  return true;
}

bool CsvReader::Next(std::vector<std::string>* fields) {
  fields->clear();
  if (!Next(&views_)) return false;
  fields->reserve(views_.size());
  for (absl::string_view v : views_) fields->emplace_back(v);
  return true;
}

std::string CsvEscape(absl::string_view s) {
  if (s.find_first_of(",\"\r\n") == absl::string_view::npos) {
    return std::string(s);
  }
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string FormatDouble(double d) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
  std::string text =
      ec != std::errc() ? absl::StrCat(d) : std::string(buf, end);
  if (text.find_first_of(".eEni") == std::string::npos) text += ".0";
  return text;
}

// --------------------------------------------------------------- mapping

namespace {
constexpr int kEntityColumn = -1;
constexpr int kTimeColumn = -2;
constexpr int kIdColumn = -3;

std::string LineError(int64_t line, absl::string_view column,
                      absl::string_view reason) {
  return absl::StrCat("line ", line, ": column '", column, "': ", reason);
}
}  // namespace

RecordMapper::RecordMapper(v1::StreamDef stream, TimeUnit time_unit)
    : stream_(std::move(stream)), time_unit_(time_unit) {}

absl::Status RecordMapper::SetHeader(const std::vector<std::string>& header) {
  absl::flat_hash_map<std::string, int> by_name;
  by_name[stream_.entity_field()] = kEntityColumn;
  by_name[stream_.time_field()] = kTimeColumn;
  by_name["event_id"] = kIdColumn;
  for (int i = 0; i < stream_.fields_size(); ++i) {
    by_name[stream_.fields(i).name()] = i;
  }
  columns_.clear();
  absl::flat_hash_map<int, bool> seen;
  for (const auto& raw : header) {
    const std::string name(absl::StripAsciiWhitespace(raw));
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("header: column '", name, "' is not a field of stream '",
                       stream_.name(), "'"));
    }
    if (seen[it->second]) {
      return absl::InvalidArgumentError(
          absl::StrCat("header: column '", name, "' appears twice"));
    }
    seen[it->second] = true;
    columns_.push_back(it->second);
  }
  if (!seen[kEntityColumn] || !seen[kTimeColumn]) {
    return absl::InvalidArgumentError(absl::StrCat(
        "header: needs the entity column '", stream_.entity_field(),
        "' and the time column '", stream_.time_field(), "'"));
  }
  return absl::OkStatus();
}

absl::Status RecordMapper::ParseCell(const v1::FieldDef& field,
                                     absl::string_view cell,
                                     CsvValue* value) {
  value->field = &field;
  value->type = field.type();
  switch (field.type()) {
    case v1::INT64:
      if (!absl::SimpleAtoi(cell, &value->i)) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", cell, "' is not an INT64"));
      }
      return absl::OkStatus();
    case v1::DOUBLE:
      if (!absl::SimpleAtod(cell, &value->d)) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", cell, "' is not a DOUBLE"));
      }
      return absl::OkStatus();
    case v1::STRING:
      value->s = cell;
      return absl::OkStatus();
    case v1::BOOL:
      if (absl::EqualsIgnoreCase(cell, "true") || cell == "1") {
        value->b = true;
      } else if (absl::EqualsIgnoreCase(cell, "false") || cell == "0") {
        value->b = false;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("'", cell, "' is not a BOOL (true/false/1/0)"));
      }
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError("field has no type");
  }
}

namespace {

// Well-formed UTF-8 (no overlong forms, surrogates or code points above
// U+10FFFF), as protobuf requires of every string field.
bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  // ASCII eight bytes at a time (most cells are).
  while (i + 8 <= s.size()) {
    uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    if ((word & 0x8080808080808080ull) != 0) break;
    i += 8;
  }
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int n;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // cut short
    for (int k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

}  // namespace

absl::Status RecordMapper::ReadCsv(absl::Span<const absl::string_view> cells,
                                   int64_t line,
                                   const std::vector<bool>* quoted,
                                   CsvEvent* event) const {
  if (cells.size() != columns_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", line, ": has ", cells.size(),
                     " columns, the header has ", columns_.size()));
  }
  // Every part is set anew (the event may be reused, and a column that
  // is not in the header is empty).
  event->event_id = absl::string_view();
  event->entity = absl::string_view();
  event->time_us = 0;
  event->has_time = true;  // SetHeader requires the time column
  event->values.clear();
  for (size_t c = 0; c < cells.size(); ++c) {
    const absl::string_view cell = cells[c];
    const int col = columns_[c];
    if (!IsValidUtf8(cell)) {
      const std::string column = col == kEntityColumn ? stream_.entity_field()
                                 : col == kIdColumn   ? "event_id"
                                 : col == kTimeColumn
                                     ? stream_.time_field()
                                     : stream_.fields(col).name();
      return absl::InvalidArgumentError(LineError(
          line, column,
          "not valid UTF-8 (convert the file, e.g. iconv -f latin1 -t utf-8)"));
    }
    if (col == kEntityColumn) {
      event->entity = cell;
    } else if (col == kIdColumn) {
      event->event_id = cell;
    } else if (col == kTimeColumn) {
      auto t = ParseTime(cell, time_unit_);
      if (!t.ok()) {
        return absl::InvalidArgumentError(
            LineError(line, stream_.time_field(), t.status().message()));
      }
      event->time_us = *t;
    } else {
      const v1::FieldDef& f = stream_.fields(col);
      CsvValue value;
      if (cell.empty()) {
        const bool empty_string =
            quoted != nullptr && c < quoted->size() && (*quoted)[c];
        if (!f.required() && !empty_string) continue;  // null
        if (f.type() != v1::STRING) {
          return absl::InvalidArgumentError(
              LineError(line, f.name(), "required field is empty"));
        }
      }
      absl::Status s = ParseCell(f, cell, &value);
      if (!s.ok()) {
        return absl::InvalidArgumentError(LineError(line, f.name(), s.message()));
      }
      event->values.push_back(value);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Event> RecordMapper::FromCsv(
    const std::vector<std::string>& cells, int64_t line,
    const std::vector<bool>* quoted) const {
  const std::vector<absl::string_view> views(cells.begin(), cells.end());
  CsvEvent row;
  absl::Status s = ReadCsv(views, line, quoted, &row);
  if (!s.ok()) return s;
  v1::Event e;
  e.set_event_id(std::string(row.event_id));
  e.set_entity(std::string(row.entity));
  *e.mutable_event_time() = MicrosToTimestamp(row.time_us);
  for (const CsvValue& value : row.values) {
    v1::Value& v = (*e.mutable_fields())[value.field->name()];
    switch (value.field->type()) {
      case v1::INT64:
        v.set_int64_value(value.i);
        break;
      case v1::DOUBLE:
        v.set_double_value(value.d);
        break;
      case v1::STRING:
        v.set_string_value(std::string(value.s));
        break;
      default:  // BOOL (ParseCell refuses the rest)
        v.set_bool_value(value.b);
    }
  }
  return e;
}

absl::Status RecordMapper::AppendCsvToRequest(
    absl::Span<const absl::string_view> cells, int64_t line,
    const std::vector<bool>* quoted, std::string* out) const {
  CsvEvent& row = scratch_row_;
  absl::Status s = ReadCsv(cells, line, quoted, &row);
  if (!s.ok()) return s;
  AppendEvent(row, out);
  return absl::OkStatus();
}

void RecordMapper::AppendEvent(const CsvEvent& row, std::string* out) {
  // Sized first, then written in place: an `events` entry holding the
  // event; each field a map entry (key 1, value 2) holding a Value.
  auto entry_size = [&](const CsvValue& v) {
    return wire::LenFieldSize(v.field->name().size()) +
           wire::LenFieldSize(wire::ValueBodySize(v));
  };
  const wire::TimestampParts time(row.time_us);
  size_t body = row.has_time ? wire::LenFieldSize(time.BodySize()) : 0;
  if (!row.event_id.empty()) body += wire::LenFieldSize(row.event_id.size());
  if (!row.entity.empty()) body += wire::LenFieldSize(row.entity.size());
  for (const CsvValue& v : row.values) {
    body += wire::LenFieldSize(entry_size(v));
  }
  const size_t at = out->size();
  out->resize(at + wire::LenFieldSize(body));
  wire::SizedWriter w(&(*out)[at]);
  w.LenHeader(v1::IngestRequest::kEventsFieldNumber, body);
  if (!row.event_id.empty()) {
    w.BytesField(v1::Event::kEventIdFieldNumber, row.event_id);
  }
  if (!row.entity.empty()) {
    w.BytesField(v1::Event::kEntityFieldNumber, row.entity);
  }
  if (row.has_time) w.TimestampField(v1::Event::kEventTimeFieldNumber, time);
  for (const CsvValue& v : row.values) {
    w.LenHeader(v1::Event::kFieldsFieldNumber, entry_size(v));
    w.BytesField(1, v.field->name());
    w.LenHeader(2, wire::ValueBodySize(v));
    wire::WriteValueBody(v, &w);
  }
  assert(w.position() == out->data() + out->size());
}

namespace {

// JSON's insignificant whitespace.
bool IsJsonSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// A JSON number's text at `*at` (RFC 8259's grammar, strictly); sets
// `integer` when it has neither fraction nor exponent.
bool ScanJsonNumber(absl::string_view text, size_t* at,
                    absl::string_view* number, bool* integer) {
  const size_t begin = *at;
  size_t i = begin;
  auto digit = [&](size_t k) {
    return k < text.size() && text[k] >= '0' && text[k] <= '9';
  };
  if (i < text.size() && text[i] == '-') ++i;
  if (!digit(i)) return false;
  if (text[i] == '0') {
    ++i;
  } else {
    while (digit(i)) ++i;
  }
  *integer = true;
  if (i < text.size() && text[i] == '.') {
    ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
    *integer = false;
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
    *integer = false;
  }
  *number = text.substr(begin, i - begin);
  *at = i;
  return true;
}

}  // namespace

bool RecordMapper::ReadSimpleJson(absl::string_view text, CsvEvent* row) const {
  row->event_id = absl::string_view();
  row->entity = absl::string_view();
  row->time_us = 0;
  row->has_time = false;
  row->values.clear();
  // Unescaped strings go here; sized for the whole line up front, so the
  // views into it stay put.
  std::string& unescaped = scratch_text_;
  unescaped.clear();
  unescaped.reserve(text.size());
  std::vector<bool>& seen = scratch_seen_;
  seen.assign(stream_.fields_size(), false);
  bool seen_entity = false, seen_id = false, seen_seq = false;
  size_t i = 0;
  auto skip_space = [&]() {
    while (i < text.size() && IsJsonSpace(text[i])) ++i;
  };
  // A string at text[i] == '"': its bytes, unescaped (short escapes only).
  auto read_string = [&](absl::string_view* out) {
    ++i;  // the opening quote
    const size_t begin = i;
    while (i < text.size() && text[i] != '"' && text[i] != '\\' &&
           static_cast<unsigned char>(text[i]) >= 0x20) {
      ++i;
    }
    if (i < text.size() && text[i] == '"') {
      *out = text.substr(begin, i - begin);
      ++i;
      return IsValidUtf8(*out);
    }
    // Escapes: copied out, unescaped.
    const size_t start = unescaped.size();
    unescaped.append(text.data() + begin, i - begin);
    while (i < text.size() && text[i] != '"') {
      const char c = text[i];
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        unescaped.push_back(c);
        ++i;
        continue;
      }
      if (i + 1 >= text.size()) return false;
      const char e = text[i + 1];
      static constexpr absl::string_view kFrom = "\"\\/bfnrt";
      static constexpr absl::string_view kTo = "\"\\/\b\f\n\r\t";
      const size_t k = kFrom.find(e);
      if (k == absl::string_view::npos) return false;  // \u and bad ones
      unescaped.push_back(kTo[k]);
      i += 2;
    }
    if (i >= text.size()) return false;
    ++i;  // the closing quote
    *out = absl::string_view(unescaped).substr(start);
    return IsValidUtf8(*out);
  };
  auto literal = [&](absl::string_view word) {
    if (text.substr(i, word.size()) != word) return false;
    i += word.size();
    return true;
  };
  skip_space();
  if (i >= text.size() || text[i] != '{') return false;
  ++i;
  skip_space();
  if (i < text.size() && text[i] == '}') {
    ++i;
  } else {
    while (true) {
      absl::string_view key;
      if (i >= text.size() || text[i] != '"' || !read_string(&key)) {
        return false;
      }
      skip_space();
      if (i >= text.size() || text[i] != ':') return false;
      ++i;
      skip_space();
      if (i >= text.size()) return false;
      // The value: a string, a number, or a literal.
      const char c = text[i];
      absl::string_view str, number;
      bool is_string = false, is_number = false, integer = false;
      bool is_null = false, boolean = false, is_bool = false;
      if (c == '"') {
        if (!read_string(&str)) return false;
        is_string = true;
      } else if (c == '-' || (c >= '0' && c <= '9')) {
        if (!ScanJsonNumber(text, &i, &number, &integer)) return false;
        is_number = true;
      } else if (literal("null")) {
        is_null = true;
      } else if (literal("true")) {
        is_bool = boolean = true;
      } else if (literal("false")) {
        is_bool = true;
      } else {
        return false;  // nested, or not JSON
      }
      int64_t whole = 0;
      double real = 0;
      if (is_number && integer && !absl::SimpleAtoi(number, &whole)) {
        return false;  // beyond int64: FromJson's rules
      }
      if (is_number && !integer) {
        // strtod, as nlohmann reads it (so the same double, rounding and
        // underflow alike); beyond double FromJson refuses the line.
        char digits[64];
        if (number.size() >= sizeof(digits)) return false;
        number.copy(digits, number.size());
        digits[number.size()] = '\0';
        real = std::strtod(digits, nullptr);
        if (!std::isfinite(real)) return false;
      }
      if (key == stream_.entity_field()) {
        if (!is_string || seen_entity) return false;
        seen_entity = true;
        row->entity = str;
      } else if (key == stream_.time_field()) {
        if (row->has_time) return false;
        absl::StatusOr<int64_t> t;
        if (is_string) {
          t = ParseTime(str, time_unit_);
        } else if (is_number && integer) {
          t = ParseTime(absl::StrCat(whole), time_unit_);  // as FromJson
        } else {
          return false;
        }
        if (!t.ok()) return false;
        row->time_us = *t;
        row->has_time = true;
      } else if (key == "event_id") {
        if (!is_string || seen_id) return false;
        seen_id = true;
        row->event_id = str;
      } else if (key == "seq") {
        if (seen_seq) return false;
        seen_seq = true;  // written by `replay`; the server assigns its own
      } else {
        int f = -1;
        for (int k = 0; k < stream_.fields_size(); ++k) {
          if (stream_.fields(k).name() == key) {
            f = k;
            break;
          }
        }
        if (f < 0 || seen[f]) return false;
        seen[f] = true;
        if (!is_null) {
          const v1::FieldDef& field = stream_.fields(f);
          CsvValue v;
          v.field = &field;
          v.type = field.type();
          switch (field.type()) {
            case v1::INT64:
              if (!is_number || !integer) return false;
              v.i = whole;
              break;
            case v1::DOUBLE:
              if (!is_number) return false;
              // An integer as FromJson converts it: -0 is 0.
              v.d = integer ? static_cast<double>(whole) : real;
              break;
            case v1::STRING:
              if (!is_string) return false;
              v.s = str;
              break;
            case v1::BOOL:
              if (!is_bool) return false;
              v.b = boolean;
              break;
            default:
              return false;
          }
          row->values.push_back(v);
        }
      }
      skip_space();
      if (i < text.size() && text[i] == ',') {
        ++i;
        skip_space();
        continue;
      }
      if (i < text.size() && text[i] == '}') {
        ++i;
        break;
      }
      return false;
    }
  }
  skip_space();
  return i == text.size();
}

absl::Status RecordMapper::AppendJsonToRequest(absl::string_view text,
                                               int64_t line,
                                               std::string* out) const {
  if (ReadSimpleJson(text, &scratch_row_)) {
    ++simple_json_lines_;
    AppendEvent(scratch_row_, out);
    return absl::OkStatus();
  }
  absl::StatusOr<v1::Event> event = FromJson(text, line);
  if (!event.ok()) return event.status();
  wire::PutBytesField(out, v1::IngestRequest::kEventsFieldNumber,
                      event->SerializeAsString());
  return absl::OkStatus();
}

absl::StatusOr<v1::Event> RecordMapper::FromJson(absl::string_view text,
                                                 int64_t line) const {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // e.what(): "[json.exception.parse_error.101] parse error at line 1,
    // column 9: syntax error while parsing ...": keep the reason.
    const std::string what = e.what();
    const size_t at = what.find(": ", what.find("column"));
    return absl::InvalidArgumentError(
        absl::StrCat("line ", line, ", column ", e.byte, ": invalid JSON: ",
                     at == std::string::npos ? what : what.substr(at + 2)));
  } catch (const nlohmann::json::exception& e) {
    // E.g. out_of_range.406 "number overflow parsing '1e400'": the text
    // after the "[json.exception.kind.id] " tag.
    const std::string what = e.what();
    const size_t at = what.find("] ");
    return absl::InvalidArgumentError(
        absl::StrCat("line ", line, ": invalid JSON: ",
                     at == std::string::npos ? what : what.substr(at + 2)));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", line, ": a JSON ", j.type_name(),
                     ", not an object (JSON Lines: one {...} per line)"));
  }
  absl::flat_hash_map<std::string, int> fields;
  for (int i = 0; i < stream_.fields_size(); ++i) {
    fields[stream_.fields(i).name()] = i;
  }
  v1::Event e;
  for (const auto& [key, val] : j.items()) {
    if (key == stream_.entity_field()) {
      if (!val.is_string()) {
        return absl::InvalidArgumentError(
            LineError(line, key, "entity must be a string"));
      }
      e.set_entity(val.get<std::string>());
    } else if (key == stream_.time_field()) {
      absl::StatusOr<int64_t> t;
      if (val.is_string()) {
        t = ParseTime(val.get<std::string>(), time_unit_);
      } else if (val.is_number_integer()) {
        t = ParseTime(absl::StrCat(val.get<int64_t>()), time_unit_);
      } else {
        t = absl::InvalidArgumentError("time must be a string or integer");
      }
      if (!t.ok()) {
        return absl::InvalidArgumentError(
            LineError(line, key, t.status().message()));
      }
      *e.mutable_event_time() = MicrosToTimestamp(*t);
    } else if (key == "event_id") {
      if (!val.is_string()) {
        return absl::InvalidArgumentError(
            LineError(line, key, "event_id must be a string"));
      }
      e.set_event_id(val.get<std::string>());
    } else if (key == "seq") {
      continue;  // written by `replay`; the server assigns its own
    } else {
      auto it = fields.find(key);
      if (it == fields.end()) {
        return absl::InvalidArgumentError(LineError(
            line, key,
            absl::StrCat("not a field of stream '", stream_.name(), "'")));
      }
      if (val.is_null()) continue;
      const v1::FieldDef& f = stream_.fields(it->second);
      v1::Value v;
      bool ok = true;
      switch (f.type()) {
        case v1::INT64:
          ok = val.is_number_integer();
          if (ok) v.set_int64_value(val.get<int64_t>());
          break;
        case v1::DOUBLE:
          ok = val.is_number();
          if (ok) v.set_double_value(val.get<double>());
          break;
        case v1::STRING:
          ok = val.is_string();
          if (ok) v.set_string_value(val.get<std::string>());
          break;
        case v1::BOOL:
          ok = val.is_boolean();
          if (ok) v.set_bool_value(val.get<bool>());
          break;
        default:
          ok = false;
      }
      if (!ok) {
        return absl::InvalidArgumentError(
            LineError(line, key,
                      absl::StrCat("want ", v1::FieldType_Name(f.type()),
                                   ", got ", val.type_name())));
      }
      (*e.mutable_fields())[key] = std::move(v);
    }
  }
  return e;
}

std::vector<std::string> RecordMapper::CsvHeader() const {
  std::vector<std::string> h = {"event_id", stream_.entity_field(),
                                stream_.time_field()};
  for (const auto& f : stream_.fields()) h.push_back(f.name());
  return h;
}

namespace {
std::string ValueText(const v1::Value& v) {
  switch (v.kind_case()) {
    case v1::Value::kInt64Value:
      return absl::StrCat(v.int64_value());
    case v1::Value::kDoubleValue:
      return FormatDouble(v.double_value());
    case v1::Value::kStringValue:
      return v.string_value();
    case v1::Value::kBoolValue:
      return v.bool_value() ? "true" : "false";
    default:
      return "";
  }
}

nlohmann::json ValueJson(const v1::Value& v) {
  switch (v.kind_case()) {
    case v1::Value::kListValue: {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& item : v.list_value().values()) {
        arr.push_back(ValueJson(item));
      }
      return arr;
    }
    case v1::Value::kInt64Value:
      return v.int64_value();
    case v1::Value::kDoubleValue:
      return v.double_value();
    case v1::Value::kStringValue:
      return v.string_value();
    case v1::Value::kBoolValue:
      return v.bool_value();
    default:
      return nullptr;
  }
}
}  // namespace

std::string ValueToJson(const v1::Value& v) {
  return ValueJson(v).dump(-1, ' ', false,
                           nlohmann::json::error_handler_t::replace);
}

std::string FeatureRowToJson(
    const google::protobuf::RepeatedPtrField<std::string>& names,
    const v1::FeatureRow& row) {
  nlohmann::ordered_json j;
  j["entity"] = row.entity();
  for (int i = 0; i < row.values_size() && i < names.size(); ++i) {
    j[names[i]] = ValueJson(row.values(i));
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string LabeledRowToJson(
    const std::vector<std::string>& columns,
    const std::vector<std::string>& cells,
    const google::protobuf::RepeatedPtrField<std::string>& names,
    const google::protobuf::RepeatedPtrField<v1::Value>& values) {
  nlohmann::ordered_json j;
  for (size_t i = 0; i < columns.size() && i < cells.size(); ++i) {
    j[columns[i]] = cells[i];
  }
  for (int i = 0; i < values.size() && i < names.size(); ++i) {
    j[names[i]] = ValueJson(values[i]);
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string ValueToCell(const v1::Value& v) {
  switch (v.kind_case()) {
    case v1::Value::KIND_NOT_SET:
      return "";
    case v1::Value::kListValue:
      return ValueToJson(v);
    default:
      return ValueText(v);
  }
}

std::string CsvCell(const v1::Value& v) {
  switch (v.kind_case()) {
    case v1::Value::KIND_NOT_SET:
      return "";
    case v1::Value::kStringValue:
      return v.string_value().empty() ? "\"\"" : CsvEscape(v.string_value());
    case v1::Value::kListValue:
      return CsvEscape(ValueToJson(v));
    default:
      return ValueText(v);
  }
}

std::string RecordMapper::CsvRow(const v1::Event& e) const {
  std::string row = CsvEscape(e.event_id());
  absl::StrAppend(&row, ",", CsvEscape(e.entity()), ",");
  auto t = TimestampToMicros(e.event_time());
  absl::StrAppend(&row, t.ok() ? FormatMicros(*t) : "");
  for (const auto& f : stream_.fields()) {
    row.push_back(',');
    auto it = e.fields().find(f.name());
    if (it != e.fields().end()) row += CsvCell(it->second);
  }
  return row;
}

std::string RecordMapper::JsonLine(const v1::Event& e) const {
  nlohmann::ordered_json j;
  j["event_id"] = e.event_id();
  j["seq"] = e.seq();
  j[stream_.entity_field()] = e.entity();
  auto t = TimestampToMicros(e.event_time());
  j[stream_.time_field()] = t.ok() ? FormatMicros(*t) : "";
  for (const auto& f : stream_.fields()) {
    auto it = e.fields().find(f.name());
    if (it != e.fields().end()) j[f.name()] = ValueJson(it->second);
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace rawfeat
