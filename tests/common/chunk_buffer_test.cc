#include "server/common/chunk_buffer.h"

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace rawfeat {
namespace {

// Random appends, truncations and clears against a std::string doing the
// same: the bytes written through Extend are the buffer's, whatever
// reallocations happened between.
TEST(ChunkBufferTest, HoldsWhatAStringWould) {
  std::mt19937_64 rng(3);
  ChunkBuffer buffer;
  std::string model;
  for (int step = 0; step < 5000; ++step) {
    const int op = static_cast<int>(rng() % 10);
    if (op < 6) {
      std::string bytes(rng() % 3000, '\0');
      for (char& c : bytes) c = static_cast<char>(rng());
      std::memcpy(buffer.Extend(bytes.size()), bytes.data(), bytes.size());
      model += bytes;
    } else if (op < 8) {
      const std::string text = std::to_string(rng());
      buffer.Append(text);
      model += text;
    } else if (op == 8 && !model.empty()) {
      const size_t keep = rng() % model.size();
      buffer.Truncate(keep);
      model.resize(keep);
    } else {
      const size_t room = buffer.capacity();
      buffer.Clear();
      model.clear();
      EXPECT_EQ(buffer.capacity(), room);  // Clear keeps the room
    }
    ASSERT_EQ(buffer.size(), model.size()) << "step " << step;
    ASSERT_EQ(buffer.view(), model) << "step " << step;
    ASSERT_GE(buffer.capacity(), buffer.size());
  }
}

TEST(ChunkBufferTest, ReserveGivesRoomWithoutMoving) {
  ChunkBuffer buffer;
  buffer.Reserve(1 << 16);
  EXPECT_GE(buffer.capacity(), size_t{1} << 16);
  char* first = buffer.Extend(100);
  std::memset(first, 'a', 100);
  const char* data = buffer.data();
  for (int i = 0; i < 600; ++i) std::memset(buffer.Extend(100), 'b', 100);
  EXPECT_EQ(buffer.data(), data);  // 60,100 bytes fit the reserved room
  EXPECT_EQ(buffer.size(), 60100u);
  EXPECT_EQ(buffer.view().substr(0, 100), std::string(100, 'a'));
}

TEST(ChunkBufferTest, ReleaseHandsTheBytesOver) {
  ChunkBuffer buffer;
  EXPECT_EQ(buffer.Release(), nullptr);  // never allocated
  buffer.Append("chunk bytes");
  const size_t size = buffer.size();
  char* bytes = buffer.Release();
  ASSERT_NE(bytes, nullptr);
  EXPECT_EQ(std::string(bytes, size), "chunk bytes");
  std::free(bytes);  // the caller's now, freed as a transport would
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.capacity(), 0u);
  // Usable again after giving its bytes away.
  buffer.Append("next");
  EXPECT_EQ(buffer.view(), "next");
}

}  // namespace
}  // namespace rawfeat
