#include "server/common/helper_pool.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace rawfeat {
namespace {

// Every item runs exactly once, on a worker number below workers(), and
// no two items of one Run run on the same worker number at once.
void CheckRun(HelperPool* pool, size_t n) {
  std::vector<std::atomic<int>> runs(n);
  std::vector<std::atomic<int>> inside(pool->workers());
  std::atomic<bool> shared{false};
  pool->Run(n, [&](size_t i, int worker) {
    ASSERT_GE(worker, 0);
    ASSERT_LT(worker, pool->workers());
    if (inside[worker].fetch_add(1) != 0) shared = true;
    ++runs[i];
    // Long enough for helpers to join in.
    volatile int spin = 0;
    for (int k = 0; k < 2000; ++k) spin = spin + k;
    --inside[worker];
  });
  EXPECT_FALSE(shared);
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(runs[i].load(), 1) << "item " << i;
}

TEST(HelperPoolTest, WithoutHelpersTheCallerRunsEveryItemInOrder) {
  HelperPool pool(0);
  EXPECT_EQ(pool.workers(), 1);
  std::vector<size_t> seen;
  pool.Run(5, [&](size_t i, int worker) {
    EXPECT_EQ(worker, 0);
    seen.push_back(i);
  });
  EXPECT_EQ(seen, (std::vector<size_t>{0, 1, 2, 3, 4}));
  pool.Run(0, [&](size_t, int) { ADD_FAILURE() << "no items"; });
}

TEST(HelperPoolTest, EveryItemRunsOnceOnADistinctWorker) {
  HelperPool pool(3);
  EXPECT_EQ(pool.workers(), 4);
  for (size_t n : {1, 2, 3, 7, 64, 1000}) CheckRun(&pool, n);
}

TEST(HelperPoolTest, HelpersDoWorkWhenIdle) {
  // The caller blocks in its first item until a helper has run one, so
  // the Run can only finish if a helper takes items.
  HelperPool pool(1);
  std::atomic<bool> helped{false};
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  pool.Run(2, [&](size_t, int worker) {
    if (worker != 0) {
      helped = true;
      return;
    }
    while (!helped.load() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
  });
  EXPECT_TRUE(helped.load()) << "no helper took an item in 60 s";
}

TEST(HelperPoolTest, ConcurrentRunsShareTheHelpers) {
  HelperPool pool(2);
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&pool, c] {
      for (int r = 0; r < 50; ++r) CheckRun(&pool, 1 + (r * 7 + c) % 40);
    });
  }
  for (auto& t : callers) t.join();
}

TEST(HelperPoolTest, DestroyedIdleOrAfterWork) {
  { HelperPool idle(4); }
  HelperPool pool(2);
  CheckRun(&pool, 100);
}

}  // namespace
}  // namespace rawfeat
