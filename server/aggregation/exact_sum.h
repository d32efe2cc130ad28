#ifndef RAWFEAT_SERVER_AGGREGATION_EXACT_SUM_H_
#define RAWFEAT_SERVER_AGGREGATION_EXACT_SUM_H_

// ExactSum: the exact sum of finite doubles, correctly rounded once at the
// end (what Python's math.fsum returns), independent of the order values are
// added or partial sums merged.
//
// Every finite double is an integer multiple of 2^-1074, so the state is one
// big integer in units of 2^-1074, kept as 32-bit digits in int64 slots
// (carry-save: a slot absorbs 2^30 additions before carries must be
// propagated). Add is O(1); Merge and Round are O(kSlots).
// Not thread-safe.

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rawfeat {

class ExactSum {
 public:
  // REQUIRES: std::isfinite(d).
  void Add(double d);
  // Adds `other`'s exact value to this one.
  void Merge(const ExactSum& other);
  // The exact sum rounded to the nearest double (ties to even).
  // Errors: OUT_OF_RANGE if its magnitude exceeds the largest double.
  absl::StatusOr<double> Round() const;

  // A compact, exact encoding of the state (appended to *out), and its
  // inverse (false on malformed input).
  void Serialize(std::string* out) const;
  bool Deserialize(absl::string_view* in);

 private:
  // 2^-1074 .. 2^1024 needs 2098 bits, plus headroom for 2^64 addends.
  static constexpr int kSlots = 70;
  void Normalize();

  std::array<int64_t, kSlots> slots_{};
  uint32_t pending_ = 0;  // additions since the last Normalize
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_AGGREGATION_EXACT_SUM_H_
