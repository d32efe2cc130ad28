#include "server/common/hash.h"

#include <openssl/sha.h>

namespace rawfeat {

Sha256Digest Sha256(absl::string_view data) {
  Sha256Digest out;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         out.data());
  return out;
}

std::string DigestHex(const Sha256Digest& digest) {
  return HexEncode(absl::string_view(
      reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::string HexEncode(absl::string_view data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (unsigned char c : data) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

}  // namespace rawfeat
