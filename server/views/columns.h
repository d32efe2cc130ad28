#ifndef RAWFEAT_SERVER_VIEWS_COLUMNS_H_
#define RAWFEAT_SERVER_VIEWS_COLUMNS_H_

// Columnar join answers (v1::ColumnChunk), written by hand (wire.h): rows
// arrive as their JoinedRow `values` fields -- the bytes the join already
// keeps per row -- and leave as one column per feature, so a client decodes
// a column with one array copy instead of one object per value.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rawfeat/v1/rawfeat.pb.h"

namespace rawfeat {

// Builds one ColumnChunk. Not thread-safe; reusable after AppendTo.
class ColumnChunkBuilder {
 public:
  explicit ColumnChunkBuilder(size_t columns);
  ~ColumnChunkBuilder();

  // Starts the next row: its index in the join's input. The previous row
  // must have received a value for every column.
  void StartRow(uint64_t index);
  // Takes the current row's next values: a run of JoinedRow `values`
  // fields (tag, length, Value body). INTERNAL if the bytes are not such
  // fields, a value's kind differs from its column's, or the row gets more
  // values than there are columns.
  absl::Status AddValues(absl::string_view fields);
  // Takes the current row's next value. INTERNAL as AddValues.
  absl::Status AddValue(const v1::Value& value);

  size_t rows() const { return rows_; }
  // About the wire size of the chunk so far (for cutting responses).
  size_t bytes() const;
  // Appends the chunk as length-delimited field `field` of the enclosing
  // message and clears the builder. INTERNAL if the last row lacks values.
  absl::Status AppendTo(int field, std::string* out);

 private:
  class Column;
  // Takes the current row's next value as v1::Value bytes.
  absl::Status AddBody(absl::string_view body);
  std::vector<std::unique_ptr<Column>> columns_;
  std::string row_index_;
  size_t rows_ = 0;
  size_t next_column_ = 0;   // of the current row
  bool incomplete_ = false;  // a row started before the last got its values
};

// Turns a snapshot chunk's rows into its `entities` and `columns` (of
// `columns` features each), in place. INTERNAL as AddValues.
absl::Status SnapshotRowsToColumns(size_t columns, v1::SnapshotChunk* chunk);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_VIEWS_COLUMNS_H_
