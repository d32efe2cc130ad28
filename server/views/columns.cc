#include "server/views/columns.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/coding.h"
#include "server/common/status_macros.h"
#include "server/common/wire.h"

namespace rawfeat {
namespace {

void PutLittleEndian(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out->push_back(static_cast<char>(v >> (8 * i)));
}

// A length-delimited field, omitted when empty (proto3 `bytes`).
size_t BytesFieldSize(const std::string& v) {
  return v.empty() ? 0 : wire::LenFieldSize(v.size());
}

void PutNonEmptyBytesField(std::string* out, int field, const std::string& v) {
  if (!v.empty()) wire::PutBytesField(out, field, v);
}

// Reads one length-delimited field numbered `field` off the front of `in`.
bool GetLenField(absl::string_view* in, int field, absl::string_view* body) {
  if (in->empty() ||
      static_cast<uint8_t>((*in)[0]) != wire::Tag(field, wire::kLen)) {
    return false;
  }
  in->remove_prefix(1);
  return GetLengthPrefixed(in, body);
}

absl::Status Malformed(absl::string_view what) {
  return absl::InternalError(absl::StrCat(
      "columnar answer: a value's bytes are malformed (", what, ")"));
}

}  // namespace

// One column's values, row after row; a list column keeps its items in a
// nested column.
class ColumnChunkBuilder::Column {
 public:
  // Adds one row: `body` is a v1::Value's bytes (empty = null).
  absl::Status Add(absl::string_view body) {
    if (body.empty()) {
      present_.push_back(0);
      Placeholder();
      ++rows_;
      return absl::OkStatus();
    }
    const uint8_t tag = static_cast<uint8_t>(body[0]);
    body.remove_prefix(1);
    uint64_t v = 0;
    absl::string_view bytes;
    switch (tag) {
      case wire::Tag(v1::Value::kInt64ValueFieldNumber, wire::kVarint):
        if (!GetVarint64(&body, &v)) return Malformed("int64");
        RETURN_IF_ERROR(SetKind(v1::COLUMN_INT64));
        PutLittleEndian(&fixed_, v, 8);
        break;
      case wire::Tag(v1::Value::kDoubleValueFieldNumber, wire::kFixed64):
        if (body.size() < 8) return Malformed("double");
        RETURN_IF_ERROR(SetKind(v1::COLUMN_DOUBLE));
        fixed_.append(body.data(), 8);  // the wire's fixed64 is little-endian
        body.remove_prefix(8);
        break;
      case wire::Tag(v1::Value::kStringValueFieldNumber, wire::kLen):
        if (!GetLengthPrefixed(&body, &bytes)) return Malformed("string");
        RETURN_IF_ERROR(SetKind(v1::COLUMN_STRING));
        wire::PutBytesField(&strings_, v1::Column::kStringsFieldNumber, bytes);
        break;
      case wire::Tag(v1::Value::kBoolValueFieldNumber, wire::kVarint):
        if (!GetVarint64(&body, &v)) return Malformed("bool");
        RETURN_IF_ERROR(SetKind(v1::COLUMN_BOOL));
        fixed_.push_back(v != 0 ? 1 : 0);
        break;
      case wire::Tag(v1::Value::kListValueFieldNumber, wire::kLen): {
        if (!GetLengthPrefixed(&body, &bytes)) return Malformed("list");
        RETURN_IF_ERROR(SetKind(v1::COLUMN_LIST));
        uint32_t n = 0;
        while (!bytes.empty()) {
          absl::string_view item;
          if (!GetLenField(&bytes, v1::ValueList::kValuesFieldNumber, &item)) {
            return Malformed("list item");
          }
          RETURN_IF_ERROR(items_->Add(item));
          ++n;
        }
        PutLittleEndian(&lengths_, n, 4);
        break;
      }
      default:
        return Malformed(absl::StrCat("tag ", tag));
    }
    if (!body.empty()) return Malformed("trailing bytes");
    present_.push_back(1);
    ++rows_;
    return absl::OkStatus();
  }

  size_t bytes() const {
    return present_.size() + fixed_.size() + strings_.size() + lengths_.size() +
           (items_ != nullptr ? items_->bytes() : 0);
  }

  size_t BodySize() const {
    return (kind_ != v1::COLUMN_NULL ? 1 + wire::VarintSize(kind_) : 0) +
           BytesFieldSize(present_) + BytesFieldSize(fixed_) + strings_.size() +
           BytesFieldSize(lengths_) +
           (items_ != nullptr ? wire::LenFieldSize(items_->BodySize()) : 0);
  }

  void AppendBody(std::string* out) const {
    if (kind_ != v1::COLUMN_NULL) {
      wire::PutVarintField(out, v1::Column::kKindFieldNumber, kind_);
    }
    PutNonEmptyBytesField(out, v1::Column::kPresentFieldNumber, present_);
    PutNonEmptyBytesField(out, v1::Column::kFixedFieldNumber, fixed_);
    out->append(strings_);
    PutNonEmptyBytesField(out, v1::Column::kListLengthsFieldNumber, lengths_);
    if (items_ != nullptr) {
      out->push_back(static_cast<char>(
          wire::Tag(v1::Column::kItemsFieldNumber, wire::kLen)));
      PutVarint64(out, items_->BodySize());
      items_->AppendBody(out);
    }
  }

  void Clear() {
    kind_ = v1::COLUMN_NULL;
    rows_ = 0;
    present_.clear();
    fixed_.clear();
    strings_.clear();
    lengths_.clear();
    items_.reset();
  }

 private:
  // The bytes of a null row of this column's kind.
  void Placeholder() {
    switch (kind_) {
      case v1::COLUMN_INT64:
      case v1::COLUMN_DOUBLE:
        fixed_.append(8, '\0');
        break;
      case v1::COLUMN_BOOL:
        fixed_.push_back(0);
        break;
      case v1::COLUMN_STRING:
        wire::PutBytesField(&strings_, v1::Column::kStringsFieldNumber, "");
        break;
      case v1::COLUMN_LIST:
        lengths_.append(4, '\0');
        break;
      default:
        break;
    }
  }

  // Fixes the column's kind at its first value, writing the null rows
  // before it; a second kind is an error.
  absl::Status SetKind(v1::ColumnKind kind) {
    if (kind == kind_) return absl::OkStatus();
    if (kind_ != v1::COLUMN_NULL) {
      return absl::InternalError(absl::StrCat(
          "columnar answer: a column holds values of kinds ",
          v1::ColumnKind_Name(kind_), " and ", v1::ColumnKind_Name(kind)));
    }
    kind_ = kind;
    if (kind == v1::COLUMN_LIST) items_ = std::make_unique<Column>();
    for (size_t i = 0; i < rows_; ++i) Placeholder();
    return absl::OkStatus();
  }

  v1::ColumnKind kind_ = v1::COLUMN_NULL;
  size_t rows_ = 0;
  std::string present_;
  std::string fixed_;
  std::string strings_;  // Column.strings fields, wire bytes
  std::string lengths_;
  std::unique_ptr<Column> items_;
};

ColumnChunkBuilder::ColumnChunkBuilder(size_t columns) {
  for (size_t i = 0; i < columns; ++i) {
    columns_.push_back(std::make_unique<Column>());
  }
}

ColumnChunkBuilder::~ColumnChunkBuilder() = default;

void ColumnChunkBuilder::StartRow(uint64_t index) {
  if (rows_ > 0 && next_column_ != columns_.size()) incomplete_ = true;
  PutLittleEndian(&row_index_, index, 8);
  ++rows_;
  next_column_ = 0;
}

absl::Status ColumnChunkBuilder::AddValues(absl::string_view fields) {
  while (!fields.empty()) {
    absl::string_view body;
    if (!GetLenField(&fields, v1::JoinedRow::kValuesFieldNumber, &body)) {
      return Malformed("values field");
    }
    RETURN_IF_ERROR(AddBody(body));
  }
  return absl::OkStatus();
}

absl::Status ColumnChunkBuilder::AddValue(const v1::Value& value) {
  return AddBody(value.SerializeAsString());
}

absl::Status ColumnChunkBuilder::AddBody(absl::string_view body) {
  if (next_column_ >= columns_.size()) {
    return absl::InternalError(absl::StrCat(
        "columnar answer: a row has more than ", columns_.size(), " values"));
  }
  return columns_[next_column_++]->Add(body);
}

size_t ColumnChunkBuilder::bytes() const {
  size_t n = row_index_.size();
  for (const auto& c : columns_) n += c->bytes();
  return n;
}

absl::Status ColumnChunkBuilder::AppendTo(int field, std::string* out) {
  if (incomplete_ || (rows_ > 0 && next_column_ != columns_.size())) {
    return absl::InternalError(absl::StrCat(
        "columnar answer: a row has fewer than ", columns_.size(), " values"));
  }
  size_t body = BytesFieldSize(row_index_);
  for (const auto& c : columns_) body += wire::LenFieldSize(c->BodySize());
  out->push_back(static_cast<char>(wire::Tag(field, wire::kLen)));
  PutVarint64(out, body);
  PutNonEmptyBytesField(out, v1::ColumnChunk::kRowIndexFieldNumber, row_index_);
  for (auto& c : columns_) {
    out->push_back(static_cast<char>(
        wire::Tag(v1::ColumnChunk::kColumnsFieldNumber, wire::kLen)));
    PutVarint64(out, c->BodySize());
    c->AppendBody(out);
    c->Clear();
  }
  row_index_.clear();
  rows_ = 0;
  next_column_ = 0;
  incomplete_ = false;
  return absl::OkStatus();
}

absl::Status SnapshotRowsToColumns(size_t columns, v1::SnapshotChunk* chunk) {
  ColumnChunkBuilder builder(columns);
  for (int i = 0; i < chunk->rows_size(); ++i) {
    const v1::FeatureRow& row = chunk->rows(i);
    builder.StartRow(static_cast<uint64_t>(i));
    for (const v1::Value& v : row.values()) {
      RETURN_IF_ERROR(builder.AddValue(v));
    }
    chunk->add_entities(row.entity());
  }
  chunk->clear_rows();
  std::string bytes;
  RETURN_IF_ERROR(
      builder.AppendTo(v1::SnapshotChunk::kColumnsFieldNumber, &bytes));
  if (!chunk->MergeFromString(bytes)) {
    return absl::InternalError("columnar answer: a chunk does not parse");
  }
  return absl::OkStatus();
}

}  // namespace rawfeat
