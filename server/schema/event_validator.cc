#include "server/schema/event_validator.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "server/common/coding.h"
#include "server/common/echo.h"
#include "server/common/time_util.h"

namespace rawfeat {
namespace {

constexpr char kHashDomain[] = "rawfeat.event.v1";

const char* KindName(const v1::Value& v) {
  switch (v.kind_case()) {
    case v1::Value::kInt64Value:
      return "INT64";
    case v1::Value::kDoubleValue:
      return "DOUBLE";
    case v1::Value::kStringValue:
      return "STRING";
    case v1::Value::kBoolValue:
      return "BOOL";
    case v1::Value::kListValue:
      return "a list";
    default:
      return "null";
  }
}

}  // namespace

Sha256Digest ContentHash(const StreamSchema& schema, absl::string_view entity,
                         int64_t time_us,
                         const std::vector<FieldValue>& values) {
  std::string buf;
  buf.reserve(64 + entity.size() + values.size() * 16);
  PutLengthPrefixed(&buf, kHashDomain);
  PutLengthPrefixed(&buf, schema.name);
  PutLengthPrefixed(&buf, entity);
  PutBigEndian64(&buf, OrderedFromSigned(time_us));
  const v1::StreamDef& def = schema.def();
  for (int pos : schema.by_name) {
    const FieldValue& v = values[pos];
    if (!v.present()) continue;
    PutLengthPrefixed(&buf, def.fields(pos).name());
    buf.push_back(static_cast<char>(v.type));
    switch (v.type) {
      case v1::INT64:
        PutBigEndian64(&buf, static_cast<uint64_t>(v.i));
        break;
      case v1::DOUBLE:
        PutFixedDouble(&buf, v.d);
        break;
      case v1::STRING:
        PutLengthPrefixed(&buf, v.s);
        break;
      case v1::BOOL:
        buf.push_back(v.b ? 1 : 0);
        break;
      default:
        break;
    }
  }
  return Sha256(buf);
}

void PrepareEvents(const StreamSchema& schema,
                   const google::protobuf::RepeatedPtrField<v1::Event>& events,
                   const IngestLimits& limits, std::vector<PendingEvent>* out,
                   std::vector<v1::RowError>* errors) {
  const v1::StreamDef& def = schema.def();
  const size_t nfields = schema.types.size();
  std::vector<FieldValue> values(nfields);
  out->reserve(out->size() + events.size());
  for (int row = 0; row < events.size(); ++row) {
    const v1::Event& e = events[row];
    bool ok = true;
    auto fail = [&](absl::string_view field, std::string reason) {
      v1::RowError err;
      err.set_row(row);
      err.set_event_id(e.event_id());
      err.set_field(std::string(field));
      err.set_reason(std::move(reason));
      errors->push_back(std::move(err));
      ok = false;
    };
    if (e.event_id().size() > limits.max_event_id_bytes) {
      fail("event_id",
           absl::StrCat("event_id is ", e.event_id().size(),
                        " bytes; the limit is ", limits.max_event_id_bytes));
    }
    if (e.entity().empty()) {
      fail(def.entity_field(), "entity is empty");
    } else if (e.entity().size() > limits.max_entity_bytes) {
      fail(def.entity_field(),
           absl::StrCat("entity is ", e.entity().size(),
                        " bytes; the limit is ", limits.max_entity_bytes));
    } else if (e.entity().find('\0') != std::string::npos) {
      fail(def.entity_field(), "entity contains a NUL byte");
    }
    int64_t time_us = 0;
    if (!e.has_event_time()) {
      fail(def.time_field(), "event time is missing");
    } else if (auto t = TimestampToMicros(e.event_time()); !t.ok()) {
      fail(def.time_field(), std::string(t.status().message()));
    } else {
      time_us = *t;
    }
    std::fill(values.begin(), values.end(), FieldValue());
    for (const auto& [name, value] : e.fields()) {
      auto it = schema.position.find(name);
      if (it == schema.position.end()) {
        fail(name, absl::StrCat("unknown field '", Echo(name), "' in stream '",
                                schema.name, "'"));
        continue;
      }
      const int pos = it->second;
      const v1::FieldType type = schema.types[pos];
      FieldValue& fv = values[pos];
      const auto kind = value.kind_case();
      if (kind == v1::Value::KIND_NOT_SET) continue;  // null = absent
      auto wrong_type = [&]() {
        fail(name,
             absl::StrCat("field '", name, "' is ", v1::FieldType_Name(type),
                          ", got ", KindName(value)));
      };
      switch (type) {
        case v1::INT64:
          if (kind != v1::Value::kInt64Value) {
            wrong_type();
            break;
          }
          fv.type = type;
          fv.i = value.int64_value();
          break;
        case v1::DOUBLE: {
          double d;
          if (kind == v1::Value::kDoubleValue) {
            d = value.double_value();
          } else if (kind == v1::Value::kInt64Value) {
            d = static_cast<double>(value.int64_value());
          } else {
            wrong_type();
            break;
          }
          if (!std::isfinite(d)) {
            fail(name, absl::StrCat("field '", name,
                                    "' is not finite (NaN and infinities "
                                    "are refused)"));
            break;
          }
          fv.type = type;
          fv.d = d;
          break;
        }
        case v1::STRING:
          if (kind != v1::Value::kStringValue) {
            wrong_type();
            break;
          }
          if (value.string_value().size() > limits.max_string_bytes) {
            fail(name, absl::StrCat("field '", name, "' is ",
                                    value.string_value().size(),
                                    " bytes; the limit is ",
                                    limits.max_string_bytes));
            break;
          }
          fv.type = type;
          fv.s = value.string_value();
          break;
        case v1::BOOL:
          if (kind != v1::Value::kBoolValue) {
            wrong_type();
            break;
          }
          fv.type = type;
          fv.b = value.bool_value();
          break;
        default:
          wrong_type();
      }
    }
    for (size_t pos = 0; pos < nfields; ++pos) {
      const v1::FieldDef& f = def.fields(static_cast<int>(pos));
      if (f.required() && !values[pos].present() &&
          !e.fields().contains(f.name())) {
        fail(f.name(),
             absl::StrCat("required field '", f.name(), "' is missing"));
      } else if (f.required() && !values[pos].present() &&
                 e.fields().at(f.name()).kind_case() ==
                     v1::Value::KIND_NOT_SET) {
        fail(f.name(), absl::StrCat("required field '", f.name(), "' is null"));
      }
    }
    if (!ok) continue;
    PendingEvent p;
    p.row = row;
    p.entity = e.entity();
    p.time_us = time_us;
    p.content_hash = ContentHash(schema, p.entity, time_us, values);
    if (e.event_id().empty()) {
      p.event_id = DigestHex(p.content_hash);
      EncodeEventValue(schema.schema_version(), "", &p.content_hash, values,
                       &p.value);
    } else {
      p.event_id = e.event_id();
      EncodeEventValue(schema.schema_version(), p.event_id, nullptr, values,
                       &p.value);
    }
    out->push_back(std::move(p));
  }
}

}  // namespace rawfeat
