// Google Benchmark microbenchmarks of the ingest hot path: key encoding,
// event value encoding/decoding, validation + content hash.

#include <random>

#include "benchmark/benchmark.h"
#include "server/common/time_util.h"
#include "server/schema/event_validator.h"
#include "server/storage/event_codec.h"
#include "server/storage/keys.h"

namespace rawfeat {
namespace {

v1::StreamDef Orders() {
  v1::StreamDef s;
  s.set_name("orders");
  s.set_entity_field("user_id");
  s.set_time_field("order_time");
  const std::pair<const char*, v1::FieldType> fields[] = {
      {"amount", v1::DOUBLE}, {"quantity", v1::INT64},
      {"category", v1::STRING}, {"coupon", v1::STRING},
      {"note", v1::STRING}, {"is_gift", v1::BOOL}};
  for (const auto& [name, type] : fields) {
    auto* f = s.add_fields();
    f->set_name(name);
    f->set_type(type);
  }
  return s;
}

StreamSchema Schema() {
  StreamSchema s;
  s.stream_id = 1;
  s.name = "orders";
  s.versions.push_back(Orders());
  for (int i = 0; i < s.def().fields_size(); ++i) {
    s.types.push_back(s.def().fields(i).type());
    s.position[s.def().fields(i).name()] = i;
    s.by_name.push_back(i);
  }
  std::sort(s.by_name.begin(), s.by_name.end(), [&](int a, int b) {
    return s.def().fields(a).name() < s.def().fields(b).name();
  });
  return s;
}

google::protobuf::RepeatedPtrField<v1::Event> Events(int n, bool with_ids) {
  google::protobuf::RepeatedPtrField<v1::Event> events;
  std::mt19937_64 rng(1);
  for (int i = 0; i < n; ++i) {
    v1::Event* e = events.Add();
    if (with_ids) e->set_event_id("ev-" + std::to_string(i));
    e->set_entity("user-" + std::to_string(rng() % 10000));
    *e->mutable_event_time() = MicrosToTimestamp(1795478400000000LL + i);
    auto& f = *e->mutable_fields();
    f["amount"].set_double_value(12.5);
    f["quantity"].set_int64_value(3);
    f["category"].set_string_value("electronics");
    f["coupon"].set_string_value("CPN-000000123456");
    f["note"].set_string_value("gift wrap 1234abcd, leave at door 00ff00ff");
    f["is_gift"].set_bool_value(true);
  }
  return events;
}

void BM_EventKey(benchmark::State& state) {
  int64_t t = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(EventKey(3, "user-12345", t, 7));
    ++t;
  }
}
BENCHMARK(BM_EventKey);

void BM_PrepareEvents(benchmark::State& state) {
  const StreamSchema schema = Schema();
  const auto events = Events(1000, state.range(0) != 0);
  for (auto _ : state) {
    std::vector<PendingEvent> out;
    std::vector<v1::RowError> errors;
    PrepareEvents(schema, events, IngestLimits(), &out, &errors);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * events.size());
}
BENCHMARK(BM_PrepareEvents)->Arg(1)->Arg(0)->ArgName("with_ids");

void BM_DecodeEventValue(benchmark::State& state) {
  const StreamSchema schema = Schema();
  const auto events = Events(1, true);
  std::vector<PendingEvent> out;
  std::vector<v1::RowError> errors;
  PrepareEvents(schema, events, IngestLimits(), &out, &errors);
  EventValueReader reader;
  for (auto _ : state) {
    benchmark::DoNotOptimize(reader.Parse(out[0].value, schema.types));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeEventValue);

}  // namespace
}  // namespace rawfeat

BENCHMARK_MAIN();
