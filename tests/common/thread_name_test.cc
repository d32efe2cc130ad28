#include "server/common/thread_name.h"

#include <dirent.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "server/storage/event_store.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

std::string CommOf(const std::string& task_dir) {
  std::ifstream in(task_dir + "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

// How many threads of this process are named `name` now.
int ThreadsNamed(const std::string& name) {
  int n = 0;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    if (CommOf(std::string("/proc/self/task/") + e->d_name) == name) ++n;
  }
  closedir(dir);
  return n;
}

TEST(ThreadNameTest, NamesTheCallingThreadCutTo15Bytes) {
  std::string short_name, long_name;
  std::thread([&] {
    NameThisThread("rf-test");
    short_name = CommOf("/proc/thread-self");
    NameThisThread("rf-a-name-longer-than-linux-keeps");
    long_name = CommOf("/proc/thread-self");
  }).join();
  EXPECT_EQ(short_name, "rf-test");
  EXPECT_EQ(long_name, "rf-a-name-longe");
}

TEST(ThreadNameTest, TheSealerIsNamed) {
  testing::TempDir dir;
  auto store = EventStore::Open(dir.Sub("db"), EventStoreOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  // The sealer names itself as it starts, soon after Open returns.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (ThreadsNamed("rf-seal") == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(ThreadsNamed("rf-seal"), 1);
  store->reset();
  EXPECT_EQ(ThreadsNamed("rf-seal"), 0);
}

}  // namespace
}  // namespace rawfeat
