#include "server/aggregation/exact_sum.h"

#include <gmp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "server/common/coding.h"

namespace rawfeat {
namespace {

constexpr uint32_t kNormalizeEvery = 1u << 30;
constexpr int64_t kDigit = int64_t{1} << 32;
// Fixed-point scales: ExactSum counts units of 2^-1074, ExactSquareSum
// units of 2^-2148.
constexpr int kSumFractionBits = 1074;
constexpr int kSquareFractionBits = 2 * kSumFractionBits;

// A finite double as sign, mantissa and the bit position of the mantissa's
// lowest bit in units of 2^-1074: d = ±mantissa * 2^(bit - 1074).
struct Decomposed {
  bool negative;
  uint64_t mantissa;  // 0 for ±0
  int bit;
};

Decomposed Decompose(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof(bits));
  const int biased = static_cast<int>((bits >> 52) & 0x7ff);
  uint64_t mantissa = bits & ((uint64_t{1} << 52) - 1);
  if (biased != 0) mantissa |= uint64_t{1} << 52;
  return {(bits >> 63) != 0, mantissa, biased == 0 ? 0 : biased - 1};
}

uint64_t Magnitude(int64_t i) {
  return i < 0 ? uint64_t{0} - static_cast<uint64_t>(i)
               : static_cast<uint64_t>(i);
}

// RAII for the few GMP integers a rounding needs.
class Mpz {
 public:
  Mpz() { mpz_init(z_); }
  ~Mpz() { mpz_clear(z_); }
  Mpz(const Mpz&) = delete;
  Mpz& operator=(const Mpz&) = delete;
  mpz_ptr get() { return z_; }

 private:
  mpz_t z_;
};

// num / den * 2^exp2 rounded once to the nearest double (ties to even;
// subnormal results have fewer bits, as IEEE 754 says).
// REQUIRES: num >= 0, den > 0. Errors: OUT_OF_RANGE above DBL_MAX.
absl::StatusOr<double> RoundQuotient(mpz_ptr num, mpz_ptr den, int64_t exp2,
                                     const char* what) {
  if (mpz_sgn(num) == 0) return 0.0;
  // floor(log2(num / den)) is e0 or e0 - 1.
  const int64_t e0 = static_cast<int64_t>(mpz_sizeinbase(num, 2)) -
                     static_cast<int64_t>(mpz_sizeinbase(den, 2)) + exp2;
  if (e0 - 1 > 1023) {
    return absl::OutOfRangeError(
        absl::StrCat(what, " exceeds the largest double"));
  }
  // The result's unit in the last place is 2^U with U = max(E - 52, -1074)
  // for E = floor(log2(value)) >= e0 - 1. Take the quotient two bits finer
  // than the smallest U can be, so a round bit and a sticky bit remain.
  const int64_t u = std::max<int64_t>(e0 - 1 - 52, -1074) - 2;
  Mpz q;
  bool sticky = false;
  const int64_t shift = exp2 - u;  // value / 2^u = num * 2^shift / den
  if (mpz_cmp_ui(den, 1) == 0) {
    // A sum: shifts only.
    if (shift >= 0) {
      mpz_mul_2exp(q.get(), num, static_cast<mp_bitcnt_t>(shift));
    } else {
      const auto drop_bits = static_cast<mp_bitcnt_t>(-shift);
      mpz_tdiv_q_2exp(q.get(), num, drop_bits);
      sticky = mpz_scan1(num, 0) < drop_bits;
    }
  } else {
    Mpz r, scaled;
    if (shift >= 0) {
      mpz_mul_2exp(scaled.get(), num, static_cast<mp_bitcnt_t>(shift));
      mpz_tdiv_qr(q.get(), r.get(), scaled.get(), den);
    } else {
      mpz_mul_2exp(scaled.get(), den, static_cast<mp_bitcnt_t>(-shift));
      mpz_tdiv_qr(q.get(), r.get(), num, scaled.get());
    }
    sticky = mpz_sgn(r.get()) != 0;
  }
  const int64_t e = static_cast<int64_t>(mpz_sizeinbase(q.get(), 2)) - 1 + u;
  const int64_t ulp = std::max<int64_t>(e - 52, -1074);
  const int drop = static_cast<int>(ulp - u);  // 2 or 3 bits
  // q < 2^57 here, so it fits an unsigned long.
  const uint64_t bits = mpz_get_ui(q.get());
  uint64_t m = bits >> drop;
  const uint64_t rest = bits & ((uint64_t{1} << drop) - 1);
  const uint64_t half = uint64_t{1} << (drop - 1);
  if (rest > half || (rest == half && (sticky || (m & 1)))) ++m;
  const double result =
      std::ldexp(static_cast<double>(m), static_cast<int>(ulp));
  if (std::isinf(result)) {
    return absl::OutOfRangeError(
        absl::StrCat(what, " exceeds the largest double"));
  }
  return result;
}

}  // namespace

// ---- CarrySaveInt

template <int kSlots>
void CarrySaveInt<kSlots>::Add(bool negative, uint64_t magnitude, int bit) {
  // At most 64 + 31 bits: three digits.
  const int slot = bit / 32;
  const unsigned __int128 wide = static_cast<unsigned __int128>(magnitude)
                                 << (bit % 32);
  const int64_t parts[3] = {
      static_cast<int64_t>(static_cast<uint64_t>(wide) & 0xffffffffu),
      static_cast<int64_t>(static_cast<uint64_t>(wide >> 32) & 0xffffffffu),
      static_cast<int64_t>(static_cast<uint64_t>(wide >> 64))};
  for (int i = 0; i < 3; ++i) {
    slots_[slot + i] += negative ? -parts[i] : parts[i];
  }
  Touch(slot, slot + 3);
  if (++pending_ >= kNormalizeEvery) Normalize();
}

template <int kSlots>
void CarrySaveInt<kSlots>::AddWide(bool negative, unsigned __int128 magnitude,
                                   int bit) {
  const int slot = bit / 32;
  const int s = bit % 32;
  const unsigned __int128 low = magnitude << s;
  const uint64_t top =
      s == 0 ? 0 : static_cast<uint64_t>(magnitude >> (128 - s));
  const int64_t parts[5] = {
      static_cast<int64_t>(static_cast<uint64_t>(low) & 0xffffffffu),
      static_cast<int64_t>(static_cast<uint64_t>(low >> 32) & 0xffffffffu),
      static_cast<int64_t>(static_cast<uint64_t>(low >> 64) & 0xffffffffu),
      static_cast<int64_t>(static_cast<uint64_t>(low >> 96) & 0xffffffffu),
      static_cast<int64_t>(top)};
  for (int i = 0; i < 5; ++i) {
    slots_[slot + i] += negative ? -parts[i] : parts[i];
  }
  Touch(slot, slot + 5);
  if (++pending_ >= kNormalizeEvery) Normalize();
}

template <int kSlots>
void CarrySaveInt<kSlots>::Normalize() {
  // Each slot but the top becomes a digit in [0, 2^32); the top keeps the
  // sign of the whole number.
  for (int i = 0; i < kSlots - 1; ++i) {
    const int64_t carry = slots_[i] >> 32;  // floor division by 2^32
    slots_[i] -= carry * kDigit;
    slots_[i + 1] += carry;
  }
  pending_ = 0;
  // A negative value now has all-ones digits up to the top slot.
  if (lo_ < hi_) Touch(lo_, kSlots);
}

template <int kSlots>
void CarrySaveInt<kSlots>::Merge(const CarrySaveInt& other) {
  // A slot grows by less than 2^32 per addition since the last Normalize,
  // so slot-wise addition is safe while the combined count stays small.
  if (uint64_t{pending_} + other.pending_ + 2 >= kNormalizeEvery) {
    CarrySaveInt o = other;
    o.Normalize();
    Normalize();
    for (int i = 0; i < kSlots; ++i) slots_[i] += o.slots_[i];
    Touch(o.lo_, o.hi_);
    Normalize();
    return;
  }
  for (int i = other.lo_; i < other.hi_; ++i) slots_[i] += other.slots_[i];
  Touch(other.lo_, other.hi_);
  pending_ += other.pending_ + 1;
}

template <int kSlots>
void CarrySaveInt<kSlots>::Digits(std::array<uint32_t, kSlots>* mag,
                                  bool* negative, int* lo, int* hi) const {
  mag->fill(0);
  *negative = false;
  *lo = kSlots;
  *hi = -1;
  if (lo_ >= hi_) return;
  // Carries propagate through [lo_, hi_) only: the value is the digits
  // there plus carry * 2^(32 * hi_), and nothing is set above that. At the
  // top slot, which keeps the sign, the last carry stays in it.
  int64_t carry = 0;
  int top = hi_;  // the slot the final carry belongs to
  for (int i = lo_; i < hi_; ++i) {
    const int64_t v = slots_[i] + carry;
    if (i == kSlots - 1) {
      carry = v;  // signed top slot
      top = i;
      break;
    }
    carry = v >> 32;  // floor division by 2^32
    (*mag)[i] = static_cast<uint32_t>(v - carry * kDigit);
  }
  // The value's two's-complement digits over [lo_, top]; the final carry
  // (|carry| < 2^32 here) is the top digit and carries the sign.
  *negative = carry < 0;
  if (top < kSlots) (*mag)[top] = static_cast<uint32_t>(carry);
  const int end = std::min(top, kSlots - 1);
  if (*negative) {
    // Negate: ~digits + 1, over [lo_, end] (every digit below lo_ is 0, so
    // the +1 lands at lo_ and stops where a digit was not zero).
    uint64_t add = 1;
    for (int i = lo_; i <= end; ++i) {
      const uint64_t v = uint64_t{static_cast<uint32_t>(~(*mag)[i])} + add;
      (*mag)[i] = static_cast<uint32_t>(v);
      add = v >> 32;
    }
  }
  for (int i = lo_; i <= end; ++i) {
    if ((*mag)[i] != 0) {
      *lo = std::min(*lo, i);
      *hi = i;
    }
  }
}

template <int kSlots>
int CarrySaveInt<kSlots>::ToMpz(void* out) const {
  mpz_ptr z = static_cast<mpz_ptr>(out);
  std::array<uint32_t, kSlots> mag;
  bool negative;
  int lo, hi;
  Digits(&mag, &negative, &lo, &hi);
  if (hi < 0) {
    mpz_set_ui(z, 0);
    return 0;
  }
  mpz_import(z, static_cast<size_t>(hi - lo + 1), /*order=*/-1,
             sizeof(uint32_t), /*endian=*/0, /*nails=*/0, &mag[lo]);
  if (negative) mpz_neg(z, z);
  return 32 * lo;
}

template <int kSlots>
bool CarrySaveInt<kSlots>::TopWindow(unsigned __int128* window, int* scale,
                                     bool* sticky, bool* negative) const {
  std::array<uint32_t, kSlots> mag;
  int lo, hi;
  Digits(&mag, negative, &lo, &hi);
  if (hi < 2) return false;
  *window = (static_cast<unsigned __int128>(mag[hi]) << 64) |
            (static_cast<unsigned __int128>(mag[hi - 1]) << 32) | mag[hi - 2];
  *scale = 32 * (hi - 2);
  *sticky = lo < hi - 2;
  return true;
}

// Encoding: varint(first non-zero slot), varint(count), count x
// zigzag-varint slots of the normalized value (empty value: 0, 0).
template <int kSlots>
void CarrySaveInt<kSlots>::Serialize(std::string* out) const {
  CarrySaveInt n = *this;
  n.Normalize();
  int lo = 0;
  int hi = kSlots - 1;
  while (hi >= 0 && n.slots_[hi] == 0) --hi;
  while (lo <= hi && n.slots_[lo] == 0) ++lo;
  PutVarint64(out, static_cast<uint64_t>(hi < 0 ? 0 : lo));
  PutVarint64(out, static_cast<uint64_t>(hi < 0 ? 0 : hi - lo + 1));
  for (int i = lo; i <= hi; ++i) PutVarint64(out, ZigZagEncode(n.slots_[i]));
}

template <int kSlots>
bool CarrySaveInt<kSlots>::Deserialize(absl::string_view* in) {
  Clear();
  return MergeSerialized(in);
}

template <int kSlots>
bool CarrySaveInt<kSlots>::MergeSerialized(absl::string_view* in) {
  uint64_t lo, count;
  if (!GetVarint64(in, &lo) || !GetVarint64(in, &count) || lo > kSlots ||
      count > kSlots - lo) {
    return false;
  }
  // Serialize wrote normalized digits: adding them is one addition.
  if (pending_ + 2 >= kNormalizeEvery) Normalize();
  if (count == 0) return true;
  // Marked before written: a malformed input that stops midway leaves the
  // slots it changed inside [lo_, hi_), so Clear still clears them.
  Touch(static_cast<int>(lo), static_cast<int>(lo + count));
  ++pending_;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t z;
    if (!GetVarint64(in, &z)) return false;
    slots_[lo + i] += ZigZagDecode(z);
  }
  return true;
}

template class CarrySaveInt<70>;
template class CarrySaveInt<134>;

// ---- ExactSum

void ExactSum::Add(double d) {
  const Decomposed x = Decompose(d);
  if (x.mantissa != 0) v_.Add(x.negative, x.mantissa, x.bit);
}

void ExactSum::AddInt(int64_t i, bool negate) {
  if (i != 0) v_.Add((i < 0) != negate, Magnitude(i), kSumFractionBits);
}

absl::StatusOr<double> ExactSum::Round() const {
  // Fast path: a sum of at least 2^-1010 is a normal double or beyond, and
  // its top 96 bits plus a sticky bit decide the rounding.
  unsigned __int128 window;
  int scale;
  bool sticky, negative;
  if (v_.TopWindow(&window, &scale, &sticky, &negative)) {
    // window >= 2^64: keep its top 53 bits, round the 75 or fewer below.
    // The index of the highest set bit (window >> 64 is not zero).
    const int top = 127 - __builtin_clzll(static_cast<uint64_t>(window >> 64));
    const int drop = top - 52;
    uint64_t m = static_cast<uint64_t>(window >> drop);
    const unsigned __int128 rest =
        window & ((static_cast<unsigned __int128>(1) << drop) - 1);
    const unsigned __int128 half = static_cast<unsigned __int128>(1)
                                   << (drop - 1);
    if (rest > half || (rest == half && (sticky || (m & 1)))) ++m;
    const double r =
        std::ldexp(static_cast<double>(m), drop + scale - kSumFractionBits);
    if (std::isinf(r)) {
      return absl::OutOfRangeError("sum exceeds the largest double");
    }
    return negative ? -r : r;
  }
  // Tiny sums (subnormal results) round with GMP.
  Mpz num, den;
  scale = v_.ToMpz(num.get());
  mpz_set_ui(den.get(), 1);
  negative = mpz_sgn(num.get()) < 0;
  mpz_abs(num.get(), num.get());
  auto r = RoundQuotient(num.get(), den.get(), scale - kSumFractionBits, "sum");
  if (!r.ok()) return r.status();
  return negative ? -*r : *r;
}

// ---- ExactSquareSum

void ExactSquareSum::AddSquare(double d, bool negate) {
  const Decomposed x = Decompose(d);
  if (x.mantissa == 0) return;
  // d^2 = mantissa^2 * 2^(2 * bit - 2148), mantissa^2 < 2^106.
  v_.AddWide(negate, static_cast<unsigned __int128>(x.mantissa) * x.mantissa,
             2 * x.bit);
}

void ExactSquareSum::AddSquareInt(int64_t i, bool negate) {
  const unsigned __int128 m = Magnitude(i);
  if (m != 0) v_.AddWide(negate, m * m, kSquareFractionBits);
}

absl::StatusOr<double> ExactSampleVariance(int64_t n, const ExactSum& s1,
                                           const ExactSquareSum& s2) {
  // var = (n * S2 - S1^2) / (n * (n - 1)); S1 in units of 2^-1074, so S1^2
  // and S2 are both in units of 2^-2148.
  Mpz num, sum, den;
  // n * S2 = num * 2^scale2 and S1^2 = sum * 2^scale1, brought to the lower
  // of the two scales.
  const int scale2 = s2.v_.ToMpz(num.get());
  mpz_mul_si(num.get(), num.get(), static_cast<long>(n));
  const int scale1 = 2 * s1.v_.ToMpz(sum.get());
  mpz_mul(sum.get(), sum.get(), sum.get());
  const int scale = std::min(scale1, scale2);
  mpz_mul_2exp(num.get(), num.get(), static_cast<mp_bitcnt_t>(scale2 - scale));
  mpz_mul_2exp(sum.get(), sum.get(), static_cast<mp_bitcnt_t>(scale1 - scale));
  mpz_sub(num.get(), num.get(), sum.get());
  mpz_set_si(den.get(), static_cast<long>(n));
  mpz_mul_si(den.get(), den.get(), static_cast<long>(n - 1));
  // Exact arithmetic: never negative for states built from real values.
  if (mpz_sgn(num.get()) < 0) mpz_set_ui(num.get(), 0);
  return RoundQuotient(num.get(), den.get(), scale - kSquareFractionBits,
                       "variance");
}

}  // namespace rawfeat
