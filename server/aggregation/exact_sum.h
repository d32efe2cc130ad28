#ifndef RAWFEAT_SERVER_AGGREGATION_EXACT_SUM_H_
#define RAWFEAT_SERVER_AGGREGATION_EXACT_SUM_H_

// Exact accumulators for the numeric aggregations, and the one rounding
// each result takes at the end.
//
// Every finite double is an integer multiple of 2^-1074, and its square an
// integer multiple of 2^-2148, so sums of values and of squares are kept as
// exact fixed-point integers: 32-bit digits in int64 slots (carry-save: a
// slot absorbs 2^30 additions before carries must be propagated). Add is
// O(1) and allocation-free; Merge is O(slots). The one rounding at the end
// uses a big-number library (GMP): always for the variance, and for sums
// whose result is subnormal (a normal sum rounds from its top 96 bits).
//
// Not thread-safe.

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rawfeat {

class ExactSum;
class ExactSquareSum;
absl::StatusOr<double> ExactSampleVariance(int64_t n, const ExactSum& s1,
                                           const ExactSquareSum& s2);

// A signed fixed-point integer of kSlots 32-bit digits in carry-save form.
// The building block of ExactSum and ExactSquareSum.
template <int kSlots>
class CarrySaveInt {
 public:
  // Adds (or subtracts) `magnitude` * 2^bit. REQUIRES: bit / 32 + 2 < kSlots
  // (Add), bit / 32 + 4 < kSlots (AddWide).
  void Add(bool negative, uint64_t magnitude, int bit);
  void AddWide(bool negative, unsigned __int128 magnitude, int bit);
  void Merge(const CarrySaveInt& other);
  // Makes the value 0, in the time of the width of what was added (not
  // kSlots).
  void Clear() {
    for (int i = lo_; i < hi_; ++i) slots_[i] = 0;
    pending_ = 0;
    lo_ = kSlots;
    hi_ = 0;
  }

  // Writes the exact value as z * 2^(returned scale) with z a GMP integer
  // (`mpz` is an `mpz_t`, kept opaque so that this header does not need
  // gmp.h); trailing zero digits go into the scale.
  int ToMpz(void* mpz) const;

  // The magnitude's top 96 bits: the value is ±(window * 2^scale + rest)
  // with 0 <= rest < 2^scale, `sticky` = (rest != 0). False (nothing set)
  // when the value has fewer than three digits above the lowest slot.
  bool TopWindow(unsigned __int128* window, int* scale, bool* sticky,
                 bool* negative) const;

  // A compact, exact encoding (appended to *out), and its inverse (false on
  // malformed input).
  void Serialize(std::string* out) const;
  bool Deserialize(absl::string_view* in);
  // Adds the value Serialize wrote at the front of *in (consumed), as
  // Deserialize into another CarrySaveInt and Merge would. False on
  // malformed input (this value may then be partly changed).
  bool MergeSerialized(absl::string_view* in);

 private:
  void Normalize();
  // The normalized magnitude as 32-bit digits, its sign, and the lowest
  // and highest non-zero digit (hi = -1 for zero).
  void Digits(std::array<uint32_t, kSlots>* mag, bool* negative, int* lo,
              int* hi) const;
  // Marks slots [lo, hi) as possibly non-zero.
  void Touch(int lo, int hi) {
    lo_ = std::min(lo_, lo);
    hi_ = std::max(hi_, hi);
  }
  std::array<int64_t, kSlots> slots_{};
  uint32_t pending_ = 0;  // additions since the last Normalize
  // Every slot outside [lo_, hi_) is zero (lo_ >= hi_: the value is 0), so
  // reading the value costs the width of the numbers added, not kSlots.
  int lo_ = kSlots;
  int hi_ = 0;
};

// ExactSum: the exact sum of finite doubles and int64 values, rounded once at
// the end (for doubles, what Python's math.fsum returns), independent of the
// order values are added or partial sums merged. Remove is Add of -x.
class ExactSum {
 public:
  // REQUIRES: std::isfinite(d).
  void Add(double d);
  void AddInt(int64_t i, bool negate = false);
  // Adds `other`'s exact value to this one.
  void Merge(const ExactSum& other) { v_.Merge(other.v_); }
  // Makes the sum 0 (an aggregation state reused for another entity).
  void Clear() { v_.Clear(); }
  // The exact sum rounded to the nearest double (ties to even).
  // Errors: OUT_OF_RANGE if its magnitude exceeds the largest double.
  absl::StatusOr<double> Round() const;

  void Serialize(std::string* out) const { v_.Serialize(out); }
  bool Deserialize(absl::string_view* in) { return v_.Deserialize(in); }
  bool MergeSerialized(absl::string_view* in) {
    return v_.MergeSerialized(in);
  }

 private:
  friend absl::StatusOr<double> ExactSampleVariance(int64_t n,
                                                    const ExactSum& s1,
                                                    const ExactSquareSum& s2);
  // Units of 2^-1074: 2^-1074 .. 2^1024 needs 2098 bits, plus 2^64 addends
  // of up to 2^1024 (or int64 values) and a sign.
  CarrySaveInt<70> v_;
};

// ExactSquareSum: the exact sum of squares of finite doubles and int64
// values (every square of a double, subnormal or up to DBL_MAX, is
// representable), for the sample variance. Remove is AddSquare(x, true).
class ExactSquareSum {
 public:
  // REQUIRES: std::isfinite(d).
  void AddSquare(double d, bool negate = false);
  void AddSquareInt(int64_t i, bool negate = false);
  void Merge(const ExactSquareSum& other) { v_.Merge(other.v_); }
  void Clear() { v_.Clear(); }

  void Serialize(std::string* out) const { v_.Serialize(out); }
  bool Deserialize(absl::string_view* in) { return v_.Deserialize(in); }
  bool MergeSerialized(absl::string_view* in) {
    return v_.MergeSerialized(in);
  }

 private:
  friend absl::StatusOr<double> ExactSampleVariance(int64_t n,
                                                    const ExactSum& s1,
                                                    const ExactSquareSum& s2);
  // Units of 2^-2148: squares reach 2^2048, plus 2^64 addends and a sign.
  CarrySaveInt<134> v_;
};

// The sample variance (divisor n - 1) of n values whose exact sum is `s1`
// and exact sum of squares is `s2`: (n*s2 - s1^2) / (n*(n-1)) computed
// exactly, then rounded once to the nearest double (ties to even, subnormal
// results included). REQUIRES: n >= 2 and s1, s2 built from the same values.
// Errors: OUT_OF_RANGE if the variance exceeds the largest double.
absl::StatusOr<double> ExactSampleVariance(int64_t n, const ExactSum& s1,
                                           const ExactSquareSum& s2);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_AGGREGATION_EXACT_SUM_H_
