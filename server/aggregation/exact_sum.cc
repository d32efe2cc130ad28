#include "server/aggregation/exact_sum.h"

#include <cmath>
#include <cstring>

#include "server/common/coding.h"

namespace rawfeat {
namespace {
constexpr uint32_t kNormalizeEvery = 1u << 30;
constexpr int64_t kDigit = int64_t{1} << 32;
}  // namespace

void ExactSum::Add(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof(bits));
  const bool negative = (bits >> 63) != 0;
  const int biased = static_cast<int>((bits >> 52) & 0x7ff);
  uint64_t mantissa = bits & ((uint64_t{1} << 52) - 1);
  if (biased == 0) {
    if (mantissa == 0) return;  // ±0
  } else {
    mantissa |= uint64_t{1} << 52;
  }
  // d = ±mantissa * 2^(shift - 1074).
  const int shift = biased == 0 ? 0 : biased - 1;
  const int slot = shift / 32;
  const unsigned __int128 wide = static_cast<unsigned __int128>(mantissa)
                                 << (shift % 32);
  const int64_t parts[3] = {static_cast<int64_t>(wide & 0xffffffffu),
                            static_cast<int64_t>((wide >> 32) & 0xffffffffu),
                            static_cast<int64_t>(wide >> 64)};
  for (int i = 0; i < 3; ++i) {
    slots_[slot + i] += negative ? -parts[i] : parts[i];
  }
  if (++pending_ >= kNormalizeEvery) Normalize();
}

void ExactSum::Normalize() {
  // Each slot but the top becomes a digit in [0, 2^32); the top keeps the
  // sign of the whole number.
  for (int i = 0; i < kSlots - 1; ++i) {
    const int64_t carry = slots_[i] >> 32;  // floor division by 2^32
    slots_[i] -= carry * kDigit;
    slots_[i + 1] += carry;
  }
  pending_ = 0;
}

void ExactSum::Merge(const ExactSum& other) {
  // A slot grows by less than 2^32 per addition since the last Normalize,
  // so slot-wise addition is safe while the combined count stays small.
  if (uint64_t{pending_} + other.pending_ + 2 >= kNormalizeEvery) {
    ExactSum o = other;
    o.Normalize();
    Normalize();
    for (int i = 0; i < kSlots; ++i) slots_[i] += o.slots_[i];
    Normalize();
    return;
  }
  for (int i = 0; i < kSlots; ++i) slots_[i] += other.slots_[i];
  pending_ += other.pending_ + 1;
}

absl::StatusOr<double> ExactSum::Round() const {
  ExactSum n = *this;
  n.Normalize();
  const bool negative = n.slots_[kSlots - 1] < 0;
  // Magnitude as 32-bit digits.
  std::array<uint32_t, kSlots> mag{};
  if (negative) {
    // Two's complement negation over the digits.
    uint64_t carry = 1;
    for (int i = 0; i < kSlots; ++i) {
      const uint64_t digit = ~static_cast<uint32_t>(n.slots_[i]) & 0xffffffffu;
      const uint64_t v = digit + carry;
      mag[i] = static_cast<uint32_t>(v);
      carry = v >> 32;
    }
  } else {
    for (int i = 0; i < kSlots; ++i)
      mag[i] = static_cast<uint32_t>(n.slots_[i]);
  }
  int top = kSlots - 1;
  while (top >= 0 && mag[top] == 0) --top;
  if (top < 0) return 0.0;
  // p = index of the highest set bit.
  const int p = top * 32 + (31 - __builtin_clz(mag[top]));
  auto bit = [&](int i) -> uint64_t {
    return i < 0 ? 0 : (mag[i / 32] >> (i % 32)) & 1u;
  };
  double result;
  if (p < 53) {
    // Fits in 53 bits: exact (a subnormal or the low normals).
    uint64_t m = 0;
    for (int i = p; i >= 0; --i) m = (m << 1) | bit(i);
    result = std::ldexp(static_cast<double>(m), -1074);
  } else {
    uint64_t m = 0;
    for (int i = p; i > p - 53; --i) m = (m << 1) | bit(i);
    const uint64_t guard = bit(p - 53);
    // Sticky: any set bit at positions q..0.
    bool sticky = false;
    const int q = p - 54;
    if (q >= 0) {
      const int digit = q / 32;
      const int width = q % 32 + 1;
      const uint32_t mask =
          width == 32 ? 0xffffffffu : ((uint32_t{1} << width) - 1);
      sticky = (mag[digit] & mask) != 0;
      for (int i = 0; i < digit && !sticky; ++i) sticky = mag[i] != 0;
    }
    int exp = p - 52 - 1074;
    if (guard && (sticky || (m & 1))) {
      ++m;
      if (m == (uint64_t{1} << 53)) {
        m >>= 1;
        ++exp;
      }
    }
    result = std::ldexp(static_cast<double>(m), exp);
    if (std::isinf(result)) {
      return absl::OutOfRangeError("sum exceeds the largest double");
    }
  }
  return negative ? -result : result;
}

void ExactSum::Serialize(std::string* out) const {
  ExactSum n = *this;
  n.Normalize();
  int top = kSlots - 1;
  while (top >= 0 && n.slots_[top] == 0) --top;
  PutVarint64(out, static_cast<uint64_t>(top + 1));
  for (int i = 0; i <= top; ++i) PutVarint64(out, ZigZagEncode(n.slots_[i]));
}

bool ExactSum::Deserialize(absl::string_view* in) {
  slots_.fill(0);
  pending_ = 0;
  uint64_t count;
  if (!GetVarint64(in, &count) || count > kSlots) return false;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t z;
    if (!GetVarint64(in, &z)) return false;
    slots_[i] = ZigZagDecode(z);
  }
  return true;
}

}  // namespace rawfeat
