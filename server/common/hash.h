#ifndef RAWFEAT_SERVER_COMMON_HASH_H_
#define RAWFEAT_SERVER_COMMON_HASH_H_

// Stable hashes. Their output is persisted (content ids) or used to split
// data between readers (partitions), so it must never change between
// versions. Thread-safe.

#include <array>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace rawfeat {

using Sha256Digest = std::array<unsigned char, 32>;

Sha256Digest Sha256(absl::string_view data);

// Lower-case hex of `data`.
std::string HexEncode(absl::string_view data);
// Lower-case hex of a digest (64 characters).
std::string DigestHex(const Sha256Digest& digest);

// 64-bit FNV-1a: the entity-hash of `Partition`.
inline uint64_t Fnv1a64(absl::string_view s) {
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

// True if `entity` falls in partition `index` of `count` (count 0 or 1 = all).
inline bool InPartition(absl::string_view entity, uint32_t index,
                        uint32_t count) {
  return count <= 1 || Fnv1a64(entity) % count == index;
}

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_COMMON_HASH_H_
