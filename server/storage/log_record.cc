#include "server/storage/log_record.h"

#include "server/common/coding.h"
#include "server/storage/keys.h"

namespace rawfeat {

namespace {
constexpr char kLogSingle = 0x01;
constexpr char kLogGroup = 0x03;
}  // namespace

LogGroupWriter::LogGroupWriter(uint64_t base) { Reset(base); }

void LogGroupWriter::Reset(uint64_t base) {
  value_.clear();
  value_.push_back(kLogGroup);
  PutVarint64(&value_, base);
  last_ = base;
  events_ = 0;
}

void LogGroupWriter::Add(const StoredEvent& e) {
  PutVarint64(&value_, e.seq - last_);
  PutVarint64(&value_, e.stream_id);
  PutLengthPrefixed(&value_, e.entity);
  PutVarint64(&value_, ZigZagEncode(e.time_us));
  PutLengthPrefixed(&value_, e.value);
  last_ = e.seq;
  ++events_;
}

std::string LogValueV1(absl::string_view event_key,
                       absl::string_view event_value) {
  std::string out;
  out.reserve(1 + 2 + event_key.size() + event_value.size());
  out.push_back(kLogSingle);
  PutVarint64(&out, event_key.size());
  out.append(event_key.data(), event_key.size());
  out.append(event_value.data(), event_value.size());
  return out;
}

bool LogEntryReader::Reset(uint64_t key_seq, absl::string_view value) {
  ok_ = true;
  seq_ = key_seq;
  kind_ = Kind::kNone;
  if (value.empty()) return ok_ = false;
  switch (value[0]) {
    case kLogGroup: {
      value.remove_prefix(1);
      if (!GetVarint64(&value, &seq_)) return ok_ = false;
      kind_ = Kind::kGroup;
      first_ = true;
      rest_ = value;
      return true;
    }
    case kLogSingle: {
      value.remove_prefix(1);
      uint64_t n;
      if (!GetVarint64(&value, &n) || n > value.size() || n == value.size()) {
        return ok_ = false;
      }
      event_key_ = value.substr(0, n);
      event_value_ = value.substr(n);
      kind_ = Kind::kSingle;
      return true;
    }
    default:
      if (IsRemovedLogValue(value)) return true;
      event_key_ = value;  // format 1 before values: the bare event key
      event_value_ = absl::string_view();
      kind_ = Kind::kKeyOnly;
      return true;
  }
}

bool LogEntryReader::Next(StoredEvent* e) {
  switch (kind_) {
    case Kind::kNone:
      return false;
    case Kind::kSingle:
    case Kind::kKeyOnly: {
      kind_ = Kind::kNone;
      ParsedEventKey k;
      if (!ParseEventKey(event_key_, &k) || k.seq != seq_) {
        return ok_ = false;
      }
      *e = StoredEvent{seq_, k.stream_id, k.entity, k.time_us, event_value_};
      return true;
    }
    case Kind::kGroup: {
      if (rest_.empty()) {
        kind_ = Kind::kNone;
        return false;
      }
      uint64_t delta, stream, time;
      absl::string_view entity, value;
      if (!GetVarint64(&rest_, &delta) || !GetVarint64(&rest_, &stream) ||
          stream > UINT32_MAX || !GetLengthPrefixed(&rest_, &entity) ||
          !GetVarint64(&rest_, &time) || !GetLengthPrefixed(&rest_, &value) ||
          value.empty() || (delta == 0 && !first_)) {
        kind_ = Kind::kNone;
        return ok_ = false;
      }
      seq_ += delta;
      first_ = false;
      *e = StoredEvent{seq_, static_cast<uint32_t>(stream), entity,
                       ZigZagDecode(time), value};
      return true;
    }
  }
  return false;
}

LogRewrite RewriteLogEntry(uint64_t key_seq, absl::string_view value,
                           const std::function<bool(const StoredEvent&)>& keep,
                           std::string* out) {
  LogEntryReader reader;
  if (!reader.Reset(key_seq, value)) return LogRewrite::kMalformed;
  if (IsRemovedLogValue(value)) return LogRewrite::kUnchanged;
  const bool group = value[0] == kLogGroup;
  uint64_t base = 0;
  if (group) {
    absl::string_view v = value.substr(1);
    GetVarint64(&v, &base);  // Reset read it already
  }
  LogGroupWriter kept(base);
  size_t total = 0;
  StoredEvent e;
  while (reader.Next(&e)) {
    ++total;
    if (keep(e)) kept.Add(e);
  }
  if (!reader.ok()) return LogRewrite::kMalformed;
  if (kept.events() == total) return LogRewrite::kUnchanged;
  if (kept.events() == 0) {
    out->assign(kLogRemoved, 1);
  } else {
    // Only a group entry holds more than one event, so only a group keeps
    // some of them.
    *out = kept.value();
  }
  return LogRewrite::kChanged;
}

}  // namespace rawfeat
