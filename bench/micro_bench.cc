// Google Benchmark microbenchmarks: the ingest hot path (key encoding,
// validation + content hash, event decoding) and every aggregator's Add and
// Merge, with the exact sum against a naive one.

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <tuple>

#include "bench/workload.h"
#include "benchmark/benchmark.h"
#include "server/aggregation/aggregator.h"
#include "server/aggregation/exact_sum.h"
#include "server/common/hash.h"
#include "server/common/time_util.h"
#include "server/events/ingester.h"
#include "server/schema/event_validator.h"
#include "server/schema/registry.h"
#include "server/storage/event_block.h"
#include "server/storage/event_codec.h"
#include "server/storage/event_head.h"
#include "server/storage/event_store.h"
#include "server/storage/keys.h"
#include "server/views/view_engine.h"

namespace rawfeat {
namespace {

v1::StreamDef Orders() {
  v1::StreamDef s;
  s.set_name("orders");
  s.set_entity_field("user_id");
  s.set_time_field("order_time");
  const std::pair<const char*, v1::FieldType> fields[] = {
      {"amount", v1::DOUBLE}, {"quantity", v1::INT64}, {"category", v1::STRING},
      {"coupon", v1::STRING}, {"note", v1::STRING},    {"is_gift", v1::BOOL}};
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

// EventHead::Add of group commits of 1,000 events over 10,000 entities,
// as ingest calls it: 200 commits into a head (20 events per entity), then
// a fresh head. Arg 0: times increase; 1: each lands anywhere in 90 days.
void BM_EventHeadAdd(benchmark::State& state) {
  constexpr int kEntities = 10000, kBatch = 1000, kBatches = 200;
  const bool late = state.range(0) != 0;
  std::mt19937_64 rng(1);
  std::vector<std::string> prefixes;
  for (int e = 0; e < kEntities; ++e) {
    prefixes.push_back(EntityPrefix(1, "user-" + std::to_string(e)));
  }
  const std::string value(96, 'v');
  std::vector<std::vector<EventHead::NewEvent>> batches(kBatches);
  uint64_t seq = 0;
  for (auto& batch : batches) {
    for (int i = 0; i < kBatch; ++i) {
      const int64_t time =
          late ? static_cast<int64_t>(rng() % (90 * kDayMicros))
               : static_cast<int64_t>(seq) * 1000;
      batch.push_back({prefixes[rng() % kEntities], time, ++seq, value});
    }
    std::sort(batch.begin(), batch.end(), [](const auto& a, const auto& b) {
      return std::tie(a.prefix, a.time_us, a.seq) <
             std::tie(b.prefix, b.time_us, b.seq);
    });
  }
  auto head = std::make_unique<EventHead>();
  size_t next = 0;
  for (auto _ : state) {
    if (next == batches.size()) {
      state.PauseTiming();
      head = std::make_unique<EventHead>();
      next = 0;
      state.ResumeTiming();
    }
    head->Add(batches[next], next + 1);
    ++next;
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_EventHeadAdd)->Arg(0)->Arg(1)->ArgName("late");

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

// The content hash's digest of a typical event's canonical bytes.
void BM_Sha256(benchmark::State& state) {
  const std::string data(static_cast<size_t>(state.range(0)), 'x');
  for (auto _ : state) {
    benchmark::DoNotOptimize(Sha256(data));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Sha256)->Arg(128)->Arg(1024);

// The server's parse of a 1,000-event batch (6 fields per event, in the
// API's map).
void BM_ParseIngestRequest(benchmark::State& state) {
  v1::IngestRequest request;
  request.set_stream("orders");
  *request.mutable_events() = Events(1000, true);
  const std::string bytes = request.SerializeAsString();
  for (auto _ : state) {
    v1::IngestRequest parsed;
    benchmark::DoNotOptimize(parsed.ParseFromString(bytes));
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_ParseIngestRequest);

// What the server does instead for a batch in the serializers' form: reads
// its events from the bytes (no message built), then prepares them.
void BM_ReadIngestBatch(benchmark::State& state) {
  const StreamSchema schema = Schema();
  v1::IngestRequest request;
  request.set_stream("orders");
  *request.mutable_events() = Events(1000, true);
  const std::string bytes = request.SerializeAsString();
  const bool prepare = state.range(0) != 0;
  IngestBatch batch;
  for (auto _ : state) {
    if (!ReadIngestBatch(bytes, &batch)) {
      state.SkipWithError("not read");
      break;
    }
    if (prepare) {
      std::vector<PendingEvent> out;
      std::vector<v1::RowError> errors;
      PrepareEvents(schema, batch, IngestLimits(), &out, &errors);
      benchmark::DoNotOptimize(out.data());
    }
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_ReadIngestBatch)->Arg(0)->Arg(1)->ArgName("and_prepare");

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

// A sealed block's times and seqs (what every scan decodes per block): 100
// events of one entity over about a day, seqs interleaved with other
// entities' as ingest leaves them.
void BM_DecodeBlockKeys(benchmark::State& state) {
  std::mt19937_64 rng(1);
  std::vector<BlockEvent> events(100);
  int64_t t = bench::kEnd - kDayMicros;
  uint64_t seq = 1000000;
  for (BlockEvent& e : events) {
    t += static_cast<int64_t>(rng() % 1700000000);  // up to ~28 minutes
    seq += 1 + rng() % 20000;
    e.time_us = t;
    e.seq = seq;
    e.value = "event";
  }
  const std::string block = EncodeBlock(events);
  std::vector<BlockEvent> out;
  absl::string_view values;
  for (auto _ : state) {
    benchmark::DoNotOptimize(DecodeBlockKeys(block, &out, &values));
  }
  state.SetItemsProcessed(state.iterations() * events.size());
}
BENCHMARK(BM_DecodeBlockKeys);

// ---- aggregation

std::vector<FieldValue> Doubles(int n) {
  std::mt19937_64 rng(3);
  std::vector<FieldValue> v(n);
  for (auto& f : v) {
    f.type = v1::DOUBLE;
    f.d = std::ldexp(static_cast<double>(rng() % 1000000) - 500000,
                     static_cast<int>(rng() % 40) - 20);
  }
  return v;
}

void BM_ExactSumAdd(benchmark::State& state) {
  const auto values = Doubles(4096);
  for (auto _ : state) {
    ExactSum s;
    for (const auto& v : values) s.Add(v.d);
    benchmark::DoNotOptimize(s.Round());
  }
  state.SetItemsProcessed(state.iterations() * values.size());
}
BENCHMARK(BM_ExactSumAdd);

void BM_NaiveSumAdd(benchmark::State& state) {
  const auto values = Doubles(4096);
  for (auto _ : state) {
    double s = 0;
    for (const auto& v : values) s += v.d;
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations() * values.size());
}
BENCHMARK(BM_NaiveSumAdd);

// Add of 4096 DOUBLE values, for each aggregator (arg = registry index).
void BM_AggregatorAdd(benchmark::State& state) {
  const auto& entry = BuiltinAggregators().entries()[state.range(0)];
  state.SetLabel(entry.spec.name);
  v1::FeatureDef def;
  def.set_aggregation(entry.spec.name);
  def.set_k(10);
  const auto values = Doubles(4096);
  for (auto _ : state) {
    auto a = entry.create(def, v1::DOUBLE);
    uint64_t seq = 0;
    for (const auto& v : values) {
      a->Add(v, static_cast<int64_t>(seq), seq);
      ++seq;
    }
    benchmark::DoNotOptimize(a.get());
  }
  state.SetItemsProcessed(state.iterations() * values.size());
}
BENCHMARK(BM_AggregatorAdd)->DenseRange(0, 9);

// Merge of two states of 512 values each.
void BM_AggregatorMerge(benchmark::State& state) {
  const auto& entry = BuiltinAggregators().entries()[state.range(0)];
  state.SetLabel(entry.spec.name);
  v1::FeatureDef def;
  def.set_aggregation(entry.spec.name);
  def.set_k(10);
  const auto values = Doubles(1024);
  auto a = entry.create(def, v1::DOUBLE);
  auto b = entry.create(def, v1::DOUBLE);
  for (size_t i = 0; i < values.size(); ++i) {
    (i % 2 ? a : b)->Add(values[i], static_cast<int64_t>(i), i);
  }
  for (auto _ : state) {
    auto c = a->Clone();
    c->Merge(*b);
    benchmark::DoNotOptimize(c.get());
  }
}
BENCHMARK(BM_AggregatorMerge)->DenseRange(0, 9);

// Finalize of a state of 512 values (where the one rounding happens).
void BM_AggregatorFinalize(benchmark::State& state) {
  const auto& entry = BuiltinAggregators().entries()[state.range(0)];
  state.SetLabel(entry.spec.name);
  v1::FeatureDef def;
  def.set_aggregation(entry.spec.name);
  def.set_k(10);
  const auto values = Doubles(512);
  auto a = entry.create(def, v1::DOUBLE);
  for (size_t i = 0; i < values.size(); ++i) {
    a->Add(values[i], static_cast<int64_t>(i), i);
  }
  v1::Value out;
  for (auto _ : state) {
    benchmark::DoNotOptimize(a->Finalize(&out));
  }
}
BENCHMARK(BM_AggregatorFinalize)->DenseRange(0, 9);

// An in-process store (no gRPC) loaded once with a small features_load
// workload: 200k events, 20k Zipf(1.1) entities, 90 days, the 8-feature
// view. Its temp dir goes at exit.
class LoadedViews {
 public:
  static LoadedViews& Get() {
    static LoadedViews* loaded = new LoadedViews();
    return *loaded;
  }
  const ViewEngine& views() const { return *views_; }
  const bench::Workload& workload() const { return workload_; }

 private:
  LoadedViews() : workload_(200000, 20000, 90, 1.1) {
    std::string tmpl = "/tmp/rawfeat-micro-XXXXXX";
    dir_ = mkdtemp(tmpl.data()) != nullptr ? tmpl : "/tmp/rawfeat-micro";
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(Get().dir_, ec);
    });
    std::filesystem::create_directories(dir_ + "/schemas");
    std::ofstream(dir_ + "/schemas/bench.textproto") << bench::kDefinitions;
    EventStoreOptions store_options;
    store_options.sync = false;
    auto store = EventStore::Open(dir_ + "/data", store_options);
    if (!store.ok()) std::abort();
    store_ = std::move(*store);
    registry_ = std::make_unique<Registry>(store_.get());
    if (!registry_->Load().ok() ||
        !ApplySchemasDir(dir_ + "/schemas", registry_.get()).empty()) {
      std::abort();
    }
    Ingester ingester(store_.get(), registry_.get(), IngestLimits());
    for (int64_t i = 0; i < workload_.events; i += 1000) {
      v1::IngestRequest request;
      workload_.FillBatch(i, std::min(workload_.events, i + 1000), &request);
      if (!ingester.Ingest(request, 0).ok()) std::abort();
    }
    views_ = std::make_unique<ViewEngine>(store_.get(), registry_.get(),
                                          ViewEngine::Options());
  }

  std::string dir_;
  bench::Workload workload_;
  std::unique_ptr<EventStore> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<ViewEngine> views_;
};

// ViewEngine::GetFeatures in process: the compute part of an online
// lookup, without gRPC. Args: entities per request; 0 = entities around the
// median rank, 1 = the heaviest 1% (tiled as lookups go, as in the server).
void BM_GetFeatures(benchmark::State& state) {
  const LoadedViews& loaded = LoadedViews::Get();
  const int batch = static_cast<int>(state.range(0));
  const int entities = loaded.workload().entities;
  const int first = state.range(1) == 0 ? entities / 2 - 500 : 0;
  const int ranks = state.range(1) == 0 ? 1000 : entities / 100;
  std::mt19937_64 rng(7);
  for (auto _ : state) {
    v1::GetFeaturesRequest request;
    request.set_view("bench");
    *request.mutable_as_of() = MicrosToTimestamp(bench::kEnd);
    for (int i = 0; i < batch; ++i) {
      request.add_entities(
          bench::Entity(first + static_cast<int>(rng() % ranks)));
    }
    auto response = loaded.views().GetFeatures(request);
    if (!response.ok()) {
      state.SkipWithError(response.status().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(response);
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_GetFeatures)
    ->ArgNames({"entities", "heavy"})
    ->Args({1, 0})
    ->Args({100, 0})
    ->Args({1, 1})
    ->Args({100, 1});

}  // namespace
}  // namespace rawfeat

BENCHMARK_MAIN();
