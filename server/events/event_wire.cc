#include "server/events/event_wire.h"

#include "absl/strings/str_cat.h"
#include "server/common/coding.h"
#include "server/common/echo.h"
#include "server/common/field_value.h"
#include "server/common/wire.h"

namespace rawfeat {
namespace {

using wire::kLen;
using wire::LenFieldSize;
using wire::Tag;
using wire::VarintSize;

using Writer = wire::SizedWriter;  // into buffers sized beforehand

}  // namespace

EventChunkEncoder::EventChunkEncoder(const StreamSchema& schema)
    : schema_(schema) {
  const auto& fields = schema.def().fields();
  entry_keys_.reserve(fields.size());
  for (const auto& f : fields) {
    std::string key(1, static_cast<char>(Tag(1, kLen)));
    PutVarint64(&key, f.name().size());
    key += f.name();
    entry_keys_.push_back(std::move(key));
  }
}

absl::Status EventChunkEncoder::AppendEvent(const StoredEvent& k,
                                            ChunkBuffer* chunk) {
  if (!reader_.Parse(k.value, schema_.types) ||
      reader_.fields().size() > entry_keys_.size()) {
    return absl::DataLossError(absl::StrCat(
        "stored event of stream '", schema_.name, "' is corrupt (entity '",
        Echo(k.entity), "', seq ", k.seq, ")"));
  }
  const wire::TimestampParts time(k.time_us);
  const size_t time_body = time.BodySize();

  const absl::string_view id = reader_.raw_event_id();
  const size_t id_size = reader_.derived_id() ? 2 * id.size() : id.size();
  size_t body = (id_size != 0 ? LenFieldSize(id_size) : 0) +
                (k.entity.empty() ? 0 : LenFieldSize(k.entity.size())) +
                LenFieldSize(time_body) +
                (k.seq != 0 ? 1 + VarintSize(k.seq) : 0);
  const auto& fields = reader_.fields();
  value_sizes_.resize(fields.size());
  for (size_t i = 0; i < fields.size(); ++i) {
    if (!fields[i].present()) continue;
    value_sizes_[i] = static_cast<uint32_t>(wire::ValueBodySize(fields[i]));
    body += LenFieldSize(entry_keys_[i].size() + LenFieldSize(value_sizes_[i]));
  }

  const size_t at = chunk->size();
  const size_t size = LenFieldSize(body);
  char* const start = chunk->Extend(size);
  Writer w(start);
  w.Byte(Tag(v1::ReadEventsResponse::kEventsFieldNumber, kLen));
  w.Varint(body);
  if (id_size != 0) {
    w.Byte(Tag(v1::Event::kEventIdFieldNumber, kLen));
    w.Varint(id_size);
    if (reader_.derived_id()) {
      w.Hex(id);
    } else {
      w.Bytes(id);
    }
  }
  if (!k.entity.empty()) {
    w.Byte(Tag(v1::Event::kEntityFieldNumber, kLen));
    w.Varint(k.entity.size());
    w.Bytes(k.entity);
  }
  w.Byte(Tag(v1::Event::kEventTimeFieldNumber, kLen));
  w.Varint(time_body);
  if (time.seconds != 0) {
    w.Byte(Tag(1, wire::kVarint));
    w.Varint(static_cast<uint64_t>(time.seconds));
  }
  if (time.nanos != 0) {
    w.Byte(Tag(2, wire::kVarint));
    w.Varint(time.nanos);
  }
  for (size_t i = 0; i < fields.size(); ++i) {
    if (!fields[i].present()) continue;
    const std::string& entry_key = entry_keys_[i];
    w.Byte(Tag(v1::Event::kFieldsFieldNumber, kLen));
    w.Varint(entry_key.size() + LenFieldSize(value_sizes_[i]));
    w.Bytes(entry_key);
    w.Byte(Tag(2, kLen));
    w.Varint(value_sizes_[i]);
    wire::WriteValueBody(fields[i], &w);
  }
  if (k.seq != 0) {
    w.Byte(Tag(v1::Event::kSeqFieldNumber, wire::kVarint));
    w.Varint(k.seq);
  }
  if (w.position() != start + size) {
    chunk->Truncate(at);
    return absl::InternalError("event wire size mismatch");
  }
  return absl::OkStatus();
}

void EventChunkEncoder::AppendWatermark(uint64_t watermark,
                                        ChunkBuffer* chunk) {
  if (watermark == 0) return;
  Writer w(chunk->Extend(1 + VarintSize(watermark)));
  w.VarintField(v1::ReadEventsResponse::kWatermarkFieldNumber, watermark);
}

}  // namespace rawfeat
