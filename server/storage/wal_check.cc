#include "server/storage/wal_check.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"

namespace rawfeat {
namespace {

constexpr size_t kBlockSize = 32768;
constexpr size_t kHeaderSize = 7;             // crc(4) length(2) type(1)
constexpr size_t kRecyclableHeaderSize = 11;  // + log number(4)
constexpr uint32_t kMaskDelta = 0xa282ead8u;

std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    table[i] = c;
  }
  return table;
}

uint32_t Unmask(uint32_t masked) {
  const uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

uint32_t DecodeFixed32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} | (uint32_t{u[1]} << 8) | (uint32_t{u[2]} << 16) |
         (uint32_t{u[3]} << 24);
}

// The first damage in one log's bytes, or false if there is none.
bool CheckLog(const std::string& data, WalDamage* damage) {
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t block_left = kBlockSize - pos % kBlockSize;
    if (block_left < kHeaderSize) {  // the block's zero trailer
      pos += block_left;
      continue;
    }
    if (data.size() - pos < kHeaderSize) {
      damage->offset = pos;
      damage->reason = "truncated record header";
      damage->at_tail = true;
      return true;
    }
    const char* h = data.data() + pos;
    const uint32_t length =
        static_cast<unsigned char>(h[4]) |
        (static_cast<uint32_t>(static_cast<unsigned char>(h[5])) << 8);
    const int type = static_cast<unsigned char>(h[6]);
    if (type == 0 && length == 0) {
      // Zeroed space (preallocated, or a block's padding): nothing follows
      // in this block.
      pos += block_left;
      continue;
    }
    const size_t header =
        type >= 5 && type <= 8 ? kRecyclableHeaderSize : kHeaderSize;
    if (header + length > block_left) {
      damage->offset = pos;
      damage->reason = "bad record length";
      return true;
    }
    if (pos + header + length > data.size()) {
      damage->offset = pos;
      damage->reason = "truncated record";
      damage->at_tail = true;
      return true;
    }
    const uint32_t want = Unmask(DecodeFixed32(h));
    const uint32_t got = Crc32c(0, h + 6, header - 6 + length);
    if (want != got) {
      damage->offset = pos;
      damage->reason = "checksum mismatch";
      // A torn last write: the bad record runs to the end of the data.
      damage->at_tail = pos + header + length == data.size();
      return true;
    }
    pos += header + length;
  }
  return false;
}

// The WAL files of `dir`, oldest first.
std::vector<std::filesystem::path> ListWals(const std::string& dir) {
  std::vector<std::filesystem::path> logs;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && absl::EndsWith(name, ".log") &&
        name != "LOG") {
      logs.push_back(entry.path());
    }
  }
  // Log numbers are zero-padded: name order is age order.
  std::sort(logs.begin(), logs.end());
  return logs;
}

}  // namespace

uint32_t Crc32c(uint32_t crc, const char* data, size_t n) {
  static const std::array<uint32_t, 256> table = MakeTable();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc =
        table[(crc ^ static_cast<unsigned char>(data[i])) & 0xff] ^ (crc >> 8);
  }
  return ~crc;
}

std::vector<WalDamage> FindWalDamage(const std::string& dir) {
  std::vector<WalDamage> found;
  for (const auto& path : ListWals(dir)) {
    std::ifstream in(path, std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
    WalDamage damage;
    if (CheckLog(data, &damage)) {
      damage.file = path.string();
      damage.size = data.size();
      found.push_back(std::move(damage));
    }
  }
  return found;
}

int RemoveEmptyWals(const std::string& dir, uint64_t live_log) {
  int removed = 0;
  for (const auto& path : ListWals(dir)) {
    uint64_t number = 0;
    if (!absl::SimpleAtoi(path.stem().string(), &number) ||
        number >= live_log) {
      continue;
    }
    std::error_code ec;
    if (std::filesystem::file_size(path, ec) != 0 || ec) continue;
    if (std::filesystem::remove(path, ec)) ++removed;
  }
  return removed;
}

}  // namespace rawfeat
