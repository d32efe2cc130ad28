// Service tests: a real rawfeatd (in process) on 127.0.0.1:0 with RocksDB in
// a temp dir, driven through the real gRPC client.

#include <fstream>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/common/time_util.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

using testing::Order;
using testing::OrdersBatch;
using testing::TestServer;

constexpr int64_t kDay = 86400LL * 1000000;
constexpr int64_t kT0 = 1795478400LL * 1000000;  // 2026-11-24T00:00:00Z

// Reads `req` as messages (ReadEvents) and as views (ReadEventViews):
// both must see the same events, each view's bytes parsing to its event.
std::vector<v1::Event> ReadAll(Client& client, v1::ReadEventsRequest req) {
  req.set_stream(req.stream().empty() ? "orders" : req.stream());
  std::vector<v1::Event> out;
  std::vector<uint64_t> watermarks;
  absl::Status s = client.ReadEvents(req, [&](const auto& chunk) {
    for (const auto& e : chunk.events()) out.push_back(e);
    watermarks.push_back(chunk.watermark());
    return true;
  });
  EXPECT_TRUE(s.ok()) << s;
  size_t i = 0, chunks = 0;
  s = client.ReadEventViews(
      req, [&](const IngestBatch& chunk, uint64_t watermark) {
        EXPECT_LT(chunks, watermarks.size());
        if (chunks < watermarks.size()) {
          EXPECT_EQ(watermark, watermarks[chunks]);
        }
        ++chunks;
        for (const IngestEvent& e : chunk.events) {
          EXPECT_LT(i, out.size());
          if (i >= out.size()) return false;
          const v1::Event& want = out[i++];
          EXPECT_EQ(e.seq, want.seq());
          EXPECT_EQ(e.event_id, want.event_id());
          EXPECT_EQ(e.entity, want.entity());
          EXPECT_EQ(e.seconds, want.event_time().seconds());
          EXPECT_EQ(e.nanos, want.event_time().nanos());
          EXPECT_EQ(e.entries, static_cast<size_t>(want.fields().size()));
          v1::Event parsed;
          EXPECT_TRUE(parsed.ParseFromArray(e.bytes.data(),
                                            static_cast<int>(e.bytes.size())));
          EXPECT_EQ(testing::Canonical(parsed), testing::Canonical(want));
        }
        return true;
      });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(i, out.size());
  EXPECT_EQ(chunks, watermarks.size());
  return out;
}

std::vector<v1::Event> ReadAll(Client& client) {
  return ReadAll(client, v1::ReadEventsRequest());
}

// The event as accepted, with the server-set seq cleared.
std::string Content(v1::Event e) {
  e.set_seq(0);
  return testing::Canonical(e);
}

uint64_t Count(Client& client) {
  auto st = client.GetStatus();
  EXPECT_TRUE(st.ok());
  for (const auto& s : st->streams()) {
    if (s.name() == "orders") return s.events();
  }
  return 0;
}

TEST(IngestTest, SameBatchThreeTimesIsStoredOnce) {
  TestServer ts;
  auto batch =
      OrdersBatch({Order("o1", "u1", kT0, 10), Order("o2", "u2", kT0 + 1, 20),
                   Order("", "u3", kT0 + 2, 30)});  // derived id
  for (int i = 0; i < 3; ++i) {
    auto r = ts.client().Ingest(batch);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->accepted(), i == 0 ? 3 : 0);
    EXPECT_EQ(r->duplicates(), i == 0 ? 0 : 3);
    EXPECT_EQ(r->watermark(), 3u);
  }
  EXPECT_EQ(Count(ts.client()), 3u);
  auto events = ReadAll(ts.client());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].event_id().size(), 64u);  // hex SHA-256
}

TEST(IngestTest, FourConcurrentClientsStoreEachEventOnce) {
  TestServer ts;
  std::vector<v1::Event> events;
  for (int i = 0; i < 500; ++i) {
    events.push_back(Order(i % 2 ? "id" + std::to_string(i) : "",
                           "u" + std::to_string(i % 37), kT0 + i, i));
  }
  std::vector<std::thread> threads;
  std::atomic<int64_t> accepted{0};
  for (int c = 0; c < 4; ++c) {
    threads.emplace_back([&, c] {
      Client client(ts.address());
      // Each client sends everything, in batches of different sizes.
      const size_t step = 50 + 25 * c;
      for (int round = 0; round < 2; ++round) {
        for (size_t i = 0; i < events.size(); i += step) {
          std::vector<v1::Event> part(
              events.begin() + i,
              events.begin() + std::min(events.size(), i + step));
          auto r = client.Ingest(OrdersBatch(part));
          ASSERT_TRUE(r.ok()) << r.status();
          accepted += r->accepted();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted.load(), 500);
  EXPECT_EQ(Count(ts.client()), 500u);
  auto stored = ReadAll(ts.client());
  ASSERT_EQ(stored.size(), 500u);
  for (size_t i = 0; i < stored.size(); ++i) {
    EXPECT_EQ(stored[i].seq(), i + 1);  // no gaps
  }
}

TEST(IngestTest, ConflictIsRefusedAndOriginalKept) {
  TestServer ts;
  ASSERT_TRUE(
      ts.client().Ingest(OrdersBatch({Order("o1", "u1", kT0, 10)})).ok());
  auto r = ts.client().Ingest(
      OrdersBatch({Order("o9", "u9", kT0, 1), Order("o1", "u1", kT0, 99)}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("row 1 field event_id"),
            std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("'o1'"), std::string::npos);
  auto events = ReadAll(ts.client());
  ASSERT_EQ(events.size(), 1u);  // o9 not written either: all or nothing
  EXPECT_EQ(events[0].fields().at("amount").double_value(), 10);

  // With SKIP_ROW the valid row goes in and the conflict is listed.
  auto skip = ts.client().Ingest(OrdersBatch(
      {Order("o9", "u9", kT0, 1), Order("o1", "u1", kT0, 99)}, v1::SKIP_ROW));
  ASSERT_TRUE(skip.ok());
  EXPECT_EQ(skip->accepted(), 1);
  ASSERT_EQ(skip->rejected_size(), 1);
  EXPECT_EQ(skip->rejected(0).row(), 1);
  EXPECT_EQ(skip->rejected(0).event_id(), "o1");
  EXPECT_EQ(ReadAll(ts.client())[0].fields().at("amount").double_value(), 10);
}

struct BadInput {
  const char* name;
  absl::StatusCode code;
  const char* message;
  std::function<void(v1::IngestRequest*)> spoil;
};

TEST(IngestTest, EveryBadInputGetsItsErrorAndWritesNothing) {
  ServerOptions opts;
  opts.limits.max_batch_rows = 10;
  opts.limits.max_entity_bytes = 32;
  opts.limits.max_string_bytes = 64;
  opts.max_message_bytes = 64 << 10;
  TestServer ts("", true, opts);
  auto ev = [](v1::IngestRequest* r) { return r->mutable_events(1); };
  const std::vector<BadInput> cases = {
      {"unknown stream", absl::StatusCode::kNotFound, "stream 'clicks'",
       [](v1::IngestRequest* r) { r->set_stream("clicks"); }},
      {"unknown field", absl::StatusCode::kInvalidArgument,
       "row 1 field price: unknown field 'price'",
       [&](v1::IngestRequest* r) {
         (*ev(r)->mutable_fields())["price"].set_double_value(1);
       }},
      {"wrong type", absl::StatusCode::kInvalidArgument,
       "row 1 field quantity: field 'quantity' is INT64, got STRING",
       [&](v1::IngestRequest* r) {
         (*ev(r)->mutable_fields())["quantity"].set_string_value("2");
       }},
      {"missing required", absl::StatusCode::kInvalidArgument,
       "row 1 field category: required field 'category' is missing",
       [&](v1::IngestRequest* r) {
         ev(r)->mutable_fields()->erase("category");
       }},
      {"empty entity", absl::StatusCode::kInvalidArgument,
       "row 1 field user_id: entity is empty",
       [&](v1::IngestRequest* r) { ev(r)->clear_entity(); }},
      {"long entity", absl::StatusCode::kInvalidArgument,
       "row 1 field user_id: entity is 33 bytes; the limit is 32",
       [&](v1::IngestRequest* r) { ev(r)->set_entity(std::string(33, 'u')); }},
      {"long string", absl::StatusCode::kInvalidArgument,
       "row 1 field category: field 'category' is 65 bytes; the limit is 64",
       [&](v1::IngestRequest* r) {
         (*ev(r)->mutable_fields())["category"].set_string_value(
             std::string(65, 'c'));
       }},
      {"time out of range", absl::StatusCode::kInvalidArgument,
       "row 1 field order_time: timestamp",
       [&](v1::IngestRequest* r) {
         ev(r)->mutable_event_time()->set_seconds(-70000000000LL);
       }},
      {"missing time", absl::StatusCode::kInvalidArgument,
       "row 1 field order_time: event time is missing",
       [&](v1::IngestRequest* r) { ev(r)->clear_event_time(); }},
      {"NaN", absl::StatusCode::kInvalidArgument, "not finite",
       [&](v1::IngestRequest* r) {
         (*ev(r)->mutable_fields())["amount"].set_double_value(std::nan(""));
       }},
      {"too many rows", absl::StatusCode::kResourceExhausted,
       "batch has 11 rows; the limit is 10",
       [](v1::IngestRequest* r) {
         while (r->events_size() < 11) {
           *r->add_events() =
               Order("x" + std::to_string(r->events_size()), "u", kT0, 1);
         }
       }},
      {"message too big", absl::StatusCode::kResourceExhausted, "",
       [&](v1::IngestRequest* r) {
         ev(r)->set_event_id(std::string(70 << 10, 'i'));
       }},
  };
  for (const auto& c : cases) {
    auto batch =
        OrdersBatch({Order("ok1", "u1", kT0, 1), Order("ok2", "u2", kT0, 2)});
    c.spoil(&batch);
    auto r = ts.client().Ingest(batch);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), c.code) << c.name << ": " << r.status();
    EXPECT_NE(r.status().message().find(c.message), std::string::npos)
        << c.name << ": " << r.status().message();
    EXPECT_EQ(ts.server().address().empty(), false);
    EXPECT_EQ(Count(ts.client()), 0u) << c.name;
    EXPECT_TRUE(ReadAll(ts.client()).empty()) << c.name;
  }
  auto st = ts.client().GetStatus();
  EXPECT_EQ(st->watermark(), 0u);
}

TEST(IngestTest, SkipRowWritesValidRowsAndListsTheRest) {
  TestServer ts;
  auto batch = OrdersBatch({Order("a", "u1", kT0, 1), Order("b", "", kT0, 2),
                            Order("c", "u3", kT0, 3)},
                           v1::SKIP_ROW);
  (*batch.mutable_events(2)->mutable_fields())["quantity"].set_bool_value(true);
  auto r = ts.client().Ingest(batch);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->accepted(), 1);
  ASSERT_EQ(r->rejected_size(), 2);
  EXPECT_EQ(r->rejected(0).row(), 1);
  EXPECT_EQ(r->rejected(0).field(), "user_id");
  EXPECT_EQ(r->rejected(1).row(), 2);
  EXPECT_EQ(r->rejected(1).event_id(), "c");
  EXPECT_EQ(r->rejected(1).field(), "quantity");
  EXPECT_EQ(Count(ts.client()), 1u);
}

// An event is stored only if it can be read back: one that would not fit a
// ReadEvents answer alone (with its seq, its derived id and the answer's
// watermark) within --max_message_bytes is a row error, though its ingest
// request fit. Sizes swept across the edge: every event accepted replays.
TEST(IngestTest, AnEventThatCouldNotBeReadBackIsRefused) {
  ServerOptions opts;
  opts.max_message_bytes = 64 << 10;
  TestServer ts("", true, opts);
  int accepted = 0, refused = 0;
  std::vector<std::string> stored;  // the coupons accepted, in seq order
  for (int margin = 112; margin <= 400; margin += 8) {
    SCOPED_TRACE(absl::StrCat("margin ", margin));
    // No event_id: the replay carries the 64-character derived one.
    v1::Event e = Order("", "u1", kT0 + margin, 1, 1, "c",
                        std::string((64 << 10) - margin, 'x'));
    e.clear_event_id();
    v1::IngestRequest req = OrdersBatch({e}, v1::SKIP_ROW);
    ASSERT_LE(req.ByteSizeLong(), size_t{64} << 10);
    auto r = ts.client().Ingest(req);
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->accepted() == 1) {
      ++accepted;
      stored.push_back(e.fields().at("coupon").string_value());
    } else {
      ++refused;
      ASSERT_EQ(r->rejected_size(), 1);
      EXPECT_EQ(r->rejected(0).row(), 0);
      EXPECT_NE(r->rejected(0).reason().find("could not be read back"),
                std::string::npos)
          << r->rejected(0).reason();
    }
  }
  EXPECT_GT(accepted, 0);
  EXPECT_GT(refused, 0);
  // Every accepted event replays (one answer each, within the limit).
  const auto events = ReadAll(ts.client());
  ASSERT_EQ(events.size(), stored.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].fields().at("coupon").string_value(), stored[i]);
  }
  // With REJECT_BATCH the batch fails and names the row.
  v1::Event big =
      Order("", "u2", kT0, 1, 1, "c", std::string((64 << 10) - 112, 'y'));
  big.clear_event_id();
  auto r = ts.client().Ingest(OrdersBatch({big}));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("row 0: the event takes"),
            absl::string_view::npos)
      << r.status();
  EXPECT_EQ(Count(ts.client()), static_cast<uint64_t>(accepted));
}

TEST(IngestTest, IngestStreamSummarizesBatches) {
  TestServer ts;
  int sent = 0;
  auto r = ts.client().IngestStream([&](v1::IngestRequest* req) {
    if (sent == 5) return false;
    if (sent == 0) req->set_stream("orders");
    for (int i = 0; i < 100; ++i) {
      // Batch 3 repeats batch 2: all duplicates.
      const int id = (sent == 3 ? 2 : sent) * 100 + i;
      *req->add_events() = Order("s" + std::to_string(id), "u", kT0 + id, id);
    }
    ++sent;
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->batches(), 5);
  EXPECT_EQ(r->accepted(), 400);
  EXPECT_EQ(r->duplicates(), 100);
  EXPECT_EQ(r->watermark(), 400u);

  // A bad batch ends the call with its index; earlier ones are durable.
  sent = 0;
  auto bad = ts.client().IngestStream([&](v1::IngestRequest* req) {
    if (sent == 2) return false;
    req->set_stream("orders");
    *req->add_events() =
        Order(sent == 0 ? "n1" : "", sent == 0 ? "u" : "", kT0, 1);
    ++sent;
    return true;
  });
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("batch 1"), std::string::npos)
      << bad.status().message();
  EXPECT_EQ(Count(ts.client()), 401u);
}

// The handler reads and validates a call's next batch while the one before
// it is written: batches are still written in the order sent, and none
// after one that fails when written (a conflict shows only then).
TEST(IngestTest, IngestStreamWritesInOrderAndNothingAfterAFailedBatch) {
  TestServer ts;
  int sent = 0;
  auto r = ts.client().IngestStream([&](v1::IngestRequest* req) {
    if (sent == 20) return false;
    req->set_stream("orders");
    for (int i = 0; i < 50; ++i) {
      const int id = sent * 50 + i;
      *req->add_events() = Order("p" + std::to_string(id),
                                 "u" + std::to_string(id % 7),
                                 kT0 + (id * 7919) % 100000, id);
    }
    ++sent;
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->batches(), 20);
  EXPECT_EQ(r->accepted(), 1000);
  const std::vector<v1::Event> replayed = ReadAll(ts.client());
  ASSERT_EQ(replayed.size(), 1000u);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(replayed[i].event_id(), "p" + std::to_string(i));
  }

  sent = 0;
  auto bad = ts.client().IngestStream([&](v1::IngestRequest* req) {
    if (sent == 3) return false;
    req->set_stream("orders");
    // Batch 1: p0 again with another amount.
    *req->add_events() =
        sent == 1 ? Order("p0", "u0", kT0, 12345)
                  : Order("q" + std::to_string(sent), "u", kT0, 1);
    ++sent;
    return true;
  });
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(
                "batch 1 (1 batches and 1 events accepted before it"),
            std::string::npos)
      << bad.status().message();
  EXPECT_EQ(Count(ts.client()), 1001u);  // q0, not q2
}

// With two batches of a call in flight, the order and the stop still hold
// wherever the failing batch is and however it fails: a conflict (found
// when written) or a row error (found when read).
TEST(IngestTest, IngestStreamStopsAtTheFailedBatchWithBatchesInFlight) {
  TestServer ts;
  ASSERT_TRUE(ts.client().Ingest(OrdersBatch({Order("x", "u", kT0, 1)})).ok());
  uint64_t stored = 1;
  constexpr int kBatches = 12, kRows = 40;
  for (int round = 0; round < 2 * kBatches; ++round) {
    const int bad = round % kBatches;
    const bool conflict = round < kBatches;
    int sent = 0;
    auto r = ts.client().IngestStream([&](v1::IngestRequest* req) {
      if (sent == kBatches) return false;
      req->set_stream("orders");
      for (int i = 0; i < kRows; ++i) {
        *req->add_events() =
            Order(absl::StrCat("s", round, "-", sent, "-", i),
                  absl::StrCat("r", round), kT0 + sent * kRows + i, i);
      }
      if (sent == bad) {
        *req->add_events() =
            conflict ? Order("x", "u", kT0, 2) : Order("y", "", kT0, 1);
      }
      ++sent;
      return true;
    });
    ASSERT_FALSE(r.ok()) << round;
    EXPECT_NE(r.status().message().find(
                  absl::StrCat("batch ", bad, " (", bad, " batches and ",
                               bad * kRows, " events accepted before it")),
              std::string::npos)
        << r.status().message();
    stored += static_cast<uint64_t>(bad * kRows);
    ASSERT_EQ(Count(ts.client()), stored) << round;
  }
  // In the order sent.
  const std::vector<v1::Event> all = ReadAll(ts.client());
  int64_t last = 0;
  std::string entity;
  for (const v1::Event& e : all) {
    if (e.entity() != entity) {
      entity = e.entity();
      last = 0;
    }
    EXPECT_GT(
        e.event_time().seconds() * 1000000 + e.event_time().nanos() / 1000,
        last);
    last = e.event_time().seconds() * 1000000 + e.event_time().nanos() / 1000;
  }
}

// Replay filters against a model of what was accepted.
TEST(ReplayTest, ReturnsExactlyWhatWasAcceptedForEveryFilter) {
  TestServer ts;
  std::mt19937_64 rng(7);
  std::vector<v1::Event> accepted;  // in seq order
  for (int b = 0; b < 10; ++b) {
    std::vector<v1::Event> batch;
    for (int i = 0; i < 100; ++i) {
      const int n = b * 100 + i;
      v1::Event e =
          Order("e" + std::to_string(n), "user" + std::to_string(rng() % 13),
                kT0 + static_cast<int64_t>(rng() % (30 * kDay)) - 15 * kDay,
                static_cast<double>(rng() % 10000) / 100, rng() % 5,
                "cat" + std::to_string(rng() % 4), rng() % 3 ? "" : "C");
      if (rng() % 4 == 0) (*e.mutable_fields())["is_gift"].set_bool_value(true);
      batch.push_back(e);
    }
    ASSERT_TRUE(ts.client().Ingest(OrdersBatch(batch)).ok());
    accepted.insert(accepted.end(), batch.begin(), batch.end());
  }
  auto all = ReadAll(ts.client());
  ASSERT_EQ(all.size(), accepted.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].seq(), i + 1);
    EXPECT_EQ(Content(all[i]), Content(accepted[i])) << i;
  }

  struct Filter {
    uint64_t after = 0, watermark = 0;
    int64_t from = INT64_MIN, to = INT64_MAX;
    std::string entity = "";
    uint64_t limit = 0;
  };
  std::vector<Filter> filters = {
      {.after = 250},
      {.watermark = 600},
      {.after = 100, .watermark = 300},
      {.from = kT0 - 2 * kDay, .to = kT0 + 3 * kDay},
      {.from = kT0},
      {.to = kT0},
      {.entity = "user3"},
      {.after = 400,
       .from = kT0 - 5 * kDay,
       .to = kT0 + kDay,
       .entity = "user5"},
      {.watermark = 500, .entity = "user7"},
      {.limit = 42},
      {.entity = "nobody"},
  };
  for (size_t fi = 0; fi < filters.size(); ++fi) {
    const Filter& f = filters[fi];
    v1::ReadEventsRequest req;
    req.set_after_seq(f.after);
    req.set_watermark(f.watermark);
    if (f.from != INT64_MIN)
      *req.mutable_from_time() = MicrosToTimestamp(f.from);
    if (f.to != INT64_MAX) *req.mutable_to_time() = MicrosToTimestamp(f.to);
    req.set_entity(f.entity);
    req.set_limit(f.limit);
    std::vector<std::string> want;
    for (size_t i = 0; i < accepted.size(); ++i) {
      const uint64_t seq = i + 1;
      const int64_t t = *TimestampToMicros(accepted[i].event_time());
      if (seq <= f.after || (f.watermark && seq > f.watermark)) continue;
      if (t < f.from || t >= f.to) continue;
      if (!f.entity.empty() && accepted[i].entity() != f.entity) continue;
      if (f.limit && want.size() == f.limit) break;
      want.push_back(Content(accepted[i]));
    }
    auto got = ReadAll(ts.client(), req);
    std::vector<std::string> got_content;
    uint64_t prev = 0;
    for (const auto& e : got) {
      EXPECT_GT(e.seq(), prev) << "filter " << fi;
      prev = e.seq();
      got_content.push_back(Content(e));
    }
    EXPECT_EQ(got_content, want) << "filter " << fi;
  }

  // Partitions split the stream with no overlap.
  std::vector<std::string> union_content;
  size_t total = 0;
  for (uint32_t k = 0; k < 4; ++k) {
    v1::ReadEventsRequest req;
    req.mutable_partition()->set_index(k);
    req.mutable_partition()->set_count(4);
    auto part = ReadAll(ts.client(), req);
    total += part.size();
    for (const auto& e : part) union_content.push_back(Content(e));
  }
  EXPECT_EQ(total, accepted.size());
  std::vector<std::string> all_content;
  for (const auto& e : accepted) all_content.push_back(Content(e));
  std::sort(union_content.begin(), union_content.end());
  std::sort(all_content.begin(), all_content.end());
  EXPECT_EQ(union_content, all_content);
}

TEST(ReplayTest, WatermarkMakesReadsReproducible) {
  TestServer ts;
  ASSERT_TRUE(ts.client().Ingest(OrdersBatch({Order("a", "u", kT0, 1)})).ok());
  v1::ReadEventsRequest req;
  req.set_stream("orders");
  uint64_t used = 0;
  ASSERT_TRUE(ts.client()
                  .ReadEvents(req,
                              [&](const auto& c) {
                                used = c.watermark();
                                return true;
                              })
                  .ok());
  EXPECT_EQ(used, 1u);
  // A late event inside the same time range arrives.
  ASSERT_TRUE(
      ts.client().Ingest(OrdersBatch({Order("b", "u", kT0 - 1, 2)})).ok());
  req.set_watermark(used);
  EXPECT_EQ(ReadAll(ts.client(), req).size(), 1u);
  req.set_watermark(0);
  EXPECT_EQ(ReadAll(ts.client(), req).size(), 2u);
}

TEST(ReplayTest, BadRequests) {
  TestServer ts;
  v1::ReadEventsRequest req;
  req.set_stream("nope");
  auto s = ts.client().ReadEvents(req, [](const auto&) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  s = ts.client().ReadEventViews(
      req, [](const IngestBatch&, uint64_t) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("nope"), std::string::npos) << s;
  req.set_stream("orders");
  req.set_watermark(5);
  s = ts.client().ReadEvents(req, [](const auto&) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("above the latest"), std::string::npos);
  req.set_watermark(0);
  req.mutable_partition()->set_index(3);
  req.mutable_partition()->set_count(2);
  s = ts.client().ReadEvents(req, [](const auto&) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

TEST(ReplayTest, EarlyStopsAndConcurrentSlowReadersAreServed) {
  TestServer ts;
  constexpr int kEvents = 5500;  // six chunks of at most 1,000
  std::vector<v1::Event> events;
  for (int i = 0; i < kEvents; ++i) {
    events.push_back(Order("r" + std::to_string(i),
                           "u" + std::to_string(i % 37), kT0 + i, i));
  }
  ASSERT_TRUE(ts.client().Ingest(OrdersBatch(events)).ok());
  v1::ReadEventsRequest req;
  req.set_stream("orders");
  // A reader that stops after its first chunk: success, one chunk seen.
  int chunks = 0;
  absl::Status s = ts.client().ReadEvents(req, [&](const auto& chunk) {
    EXPECT_GT(chunk.events_size(), 0);
    ++chunks;
    return false;
  });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(chunks, 1);
  chunks = 0;
  s = ts.client().ReadEventViews(req, [&](const IngestBatch& chunk, uint64_t) {
    EXPECT_FALSE(chunk.events.empty());
    ++chunks;
    return false;
  });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(chunks, 1);
  // Two readers at once, one of them slow: each gets every event in seq
  // order (the server holds at most one chunk back per reader).
  std::vector<std::vector<uint64_t>> seqs(2);
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      absl::Status st = ts.client().ReadEvents(req, [&](const auto& chunk) {
        if (r == 1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        for (const auto& e : chunk.events()) seqs[r].push_back(e.seq());
        return true;
      });
      EXPECT_TRUE(st.ok()) << st;
    });
  }
  for (auto& t : readers) t.join();
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(seqs[r].size(), static_cast<size_t>(kEvents)) << "reader " << r;
    for (int i = 0; i < kEvents; ++i) {
      ASSERT_EQ(seqs[r][i], static_cast<uint64_t>(i + 1)) << "reader " << r;
    }
  }
}

TEST(ReplayTest, ShutdownEndsAReplayWhoseReaderStalled) {
  TestServer ts;
  // ~6 MB of responses: more than gRPC buffers for a reader that stopped.
  constexpr int kEvents = 60000;
  for (int b = 0; b < 2; ++b) {
    std::vector<v1::Event> events;
    for (int i = b * kEvents / 2; i < (b + 1) * kEvents / 2; ++i) {
      events.push_back(Order("s" + std::to_string(i),
                             "u" + std::to_string(i % 101), kT0 + i, i));
    }
    ASSERT_TRUE(ts.client().Ingest(OrdersBatch(events)).ok());
  }
  // A window that cannot grow, so the stalled reader stalls the server.
  auto stub = testing::SmallWindowStub(ts.address());
  absl::Notification first_chunk;
  absl::Notification shut_down;
  grpc::Status status;
  size_t got = 0;
  std::thread reader([&] {
    v1::ReadEventsRequest req;
    req.set_stream("orders");
    grpc::ClientContext context;
    auto stream = stub->ReadEvents(&context, req);
    v1::ReadEventsResponse chunk;
    if (stream->Read(&chunk)) got += static_cast<size_t>(chunk.events_size());
    first_chunk.Notify();
    // Stalls (reads nothing) until the server has shut down.
    shut_down.WaitForNotificationWithTimeout(absl::Seconds(60));
    while (stream->Read(&chunk)) {
      got += static_cast<size_t>(chunk.events_size());
    }
    status = stream->Finish();
  });
  first_chunk.WaitForNotification();
  // Returns only once the stalled call has ended (its producer thread
  // gave up waiting for the reader).
  ts.server().Shutdown();
  ts.server().Wait();
  shut_down.Notify();
  reader.join();
  EXPECT_FALSE(status.ok());
  EXPECT_GT(got, 0u);
  EXPECT_LT(got, static_cast<size_t>(kEvents));
}

TEST(RestartTest, DataAndDefinitionsSurviveAndReingestAddsNothing) {
  testing::TempDir dir;
  std::vector<v1::Event> dump;
  for (int i = 0; i < 300; ++i) {
    dump.push_back(Order(i % 3 ? "d" + std::to_string(i) : "",
                         "u" + std::to_string(i % 11), kT0 + i * 1000, i));
  }
  {
    TestServer ts(dir.Sub("data"));
    ASSERT_TRUE(ts.client().Ingest(OrdersBatch(dump)).ok());
    // Evolve the stream before the restart.
    v1::ApplyDefinitionsRequest apply;
    *apply.mutable_definitions() = testing::OrdersDefinitions();
    auto* f = apply.mutable_definitions()->mutable_streams(0)->add_fields();
    f->set_name("channel");
    f->set_type(v1::STRING);
    ASSERT_TRUE(ts.client().ApplyDefinitions(apply).ok());
  }
  TestServer ts(dir.Sub("data"), /*apply_orders=*/false);
  EXPECT_EQ(Count(ts.client()), 300u);
  auto defs = ts.client().ListDefinitions();
  ASSERT_TRUE(defs.ok());
  ASSERT_EQ(defs->streams_size(), 1);
  EXPECT_EQ(defs->streams(0).schema_versions(), 2u);
  auto r = ts.client().Ingest(OrdersBatch(dump));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->accepted(), 0);
  EXPECT_EQ(r->duplicates(), 300);
  // Old events decode under the evolved stream; new ones use the new field.
  auto e = Order("new", "u", kT0, 1);
  (*e.mutable_fields())["channel"].set_string_value("web");
  ASSERT_TRUE(ts.client().Ingest(OrdersBatch({e})).ok());
  auto all = ReadAll(ts.client());
  ASSERT_EQ(all.size(), 301u);
  EXPECT_EQ(all[0].event_id().size(), 64u);  // derived from content
  EXPECT_EQ(Content(all[1]), Content(dump[1]));
  EXPECT_EQ(all[300].fields().at("channel").string_value(), "web");
  EXPECT_EQ(all[300].seq(), 301u);
}

TEST(DefinitionsTest, ApplyOverRpc) {
  TestServer ts("", /*apply_orders=*/false);
  v1::ApplyDefinitionsRequest req;
  *req.mutable_definitions() = testing::OrdersDefinitions();
  req.set_dry_run(true);
  auto r = ts.client().ApplyDefinitions(req);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->changes_size(), 1);
  EXPECT_NE(r->changes(0).find("add stream 'orders'"), std::string::npos);
  EXPECT_EQ(ts.client().ListDefinitions()->streams_size(), 0);
  req.set_dry_run(false);
  ASSERT_TRUE(ts.client().ApplyDefinitions(req).ok());
  req.mutable_definitions()->mutable_streams(0)->mutable_fields(1)->set_type(
      v1::STRING);
  r = ts.client().ApplyDefinitions(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("field 'quantity' cannot change type"),
            std::string::npos);
}

TEST(StatusTest, ReportsCountsWatermarkDiskAndProblems) {
  testing::TempDir schemas;
  std::ofstream(schemas.Sub("broken.textproto")) << "streams { name: ";
  ServerOptions opts;
  opts.schemas_dir = schemas.path();
  TestServer ts("", true, opts);
  ASSERT_TRUE(ts.client().Ingest(OrdersBatch({Order("a", "u", kT0, 1)})).ok());
  auto st = ts.client().GetStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE(st->version().empty());
  EXPECT_EQ(st->watermark(), 1u);
  EXPECT_GT(st->disk_bytes(), 0u);
  ASSERT_EQ(st->streams_size(), 1);
  EXPECT_EQ(st->streams(0).events(), 1u);
  ASSERT_EQ(st->definition_problems_size(), 1);
  EXPECT_NE(st->definition_problems(0).find("broken.textproto:1:"),
            std::string::npos)
      << st->definition_problems(0);
}

}  // namespace
}  // namespace rawfeat
