#ifndef RAWFEAT_SERVER_COMMON_TIME_UTIL_H_
#define RAWFEAT_SERVER_COMMON_TIME_UTIL_H_

// Time inside rawfeat is int64 microseconds since the Unix epoch, UTC.
// On the wire it is google.protobuf.Timestamp; sub-microsecond parts are
// floored. All functions are pure and thread-safe.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/timestamp.pb.h"

namespace rawfeat {

// The range protobuf Timestamps allow: 0001-01-01T00:00:00Z through
// 9999-12-31T23:59:59.999999Z.
inline constexpr int64_t kMinMicros = -62135596800LL * 1000000;
inline constexpr int64_t kMaxMicros = 253402300799LL * 1000000 + 999999;

// UTC days (the unit of day tiles and retention's grace).
inline constexpr int64_t kDayMicros = 86400LL * 1000000;
// The start of the UTC day holding `time_us` (floor).
inline int64_t DayStart(int64_t time_us) {
  int64_t d = time_us / kDayMicros;
  if (time_us % kDayMicros < 0) --d;
  return d * kDayMicros;
}

// Floors to microseconds. Errors: INVALID_ARGUMENT if out of range or if
// nanos is not in [0, 1e9).
absl::StatusOr<int64_t> TimestampToMicros(
    const google::protobuf::Timestamp& ts);
// The same for a timestamp's two fields.
absl::StatusOr<int64_t> TimestampToMicros(int64_t seconds, int32_t nanos);

// TimestampToMicros for a request field: errors name the field
// ("as_of: timestamp ... is outside ...").
absl::StatusOr<int64_t> RequestTimeToMicros(
    const google::protobuf::Timestamp& ts, absl::string_view field);

// REQUIRES: kMinMicros <= micros <= kMaxMicros.
google::protobuf::Timestamp MicrosToTimestamp(int64_t micros);

// "2026-08-01T09:30:00Z", or "2026-08-01T09:30:00.123400Z" (always six
// fraction digits) when the time is not a whole second.
std::string FormatMicros(int64_t micros);

// Unit of a bare integer time.
enum class TimeUnit { kNone, kSeconds, kMillis, kMicros };

// Parses "s", "ms", "us" (and "none"). INVALID_ARGUMENT otherwise.
absl::StatusOr<TimeUnit> ParseTimeUnit(absl::string_view s);

// Parses an RFC 3339 time with any offset ("2026-11-24T09:00:00+09:00"), or
// an integer with a unit suffix ("1700000000s", "1700000000000ms",
// "1700000000000000us"), or a bare integer when `bare_unit` is not kNone.
// Errors: INVALID_ARGUMENT naming the text and the accepted forms.
absl::StatusOr<int64_t> ParseTime(absl::string_view text,
                                  TimeUnit bare_unit = TimeUnit::kNone);

// Wall clock now, in microseconds.
int64_t NowMicros();

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_COMMON_TIME_UTIL_H_
