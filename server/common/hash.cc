#include "server/common/hash.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <memory>

namespace rawfeat {
namespace {

// OpenSSL 3's one-shot SHA256() looks the algorithm up in the provider
// registry (EVP_MD_fetch) and allocates a context on every call, which
// costs three times what hashing an event's ~128 bytes does. The algorithm
// is fetched once per process, and each thread keeps one context.
const EVP_MD* FetchedSha256() {
  static const EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

struct ContextFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

}  // namespace

Sha256Digest Sha256(absl::string_view data) {
  Sha256Digest out;
  thread_local const std::unique_ptr<EVP_MD_CTX, ContextFree> ctx(
      EVP_MD_CTX_new());
  const EVP_MD* md = FetchedSha256();
  unsigned int size = 0;
  if (md != nullptr && ctx != nullptr &&
      EVP_DigestInit_ex2(ctx.get(), md, nullptr) == 1 &&
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) == 1 &&
      EVP_DigestFinal_ex(ctx.get(), out.data(), &size) == 1 &&
      size == out.size()) {
    return out;
  }
  // Not expected (no memory, or no default provider): the one-shot path.
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
