#include "server/common/time_util.h"

#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace rawfeat {

absl::StatusOr<int64_t> TimestampToMicros(
    const google::protobuf::Timestamp& ts) {
  if (ts.nanos() < 0 || ts.nanos() >= 1000000000) {
    return absl::InvalidArgumentError(
        absl::StrCat("timestamp nanos ", ts.nanos(), " out of [0, 1e9)"));
  }
  const int64_t min_s = kMinMicros / 1000000;
  const int64_t max_s = kMaxMicros / 1000000;
  if (ts.seconds() < min_s || ts.seconds() > max_s) {
    return absl::InvalidArgumentError(absl::StrCat(
        "timestamp ", ts.seconds(), "s is outside 0001-01-01..9999-12-31"));
  }
  return ts.seconds() * 1000000 + ts.nanos() / 1000;
}

absl::StatusOr<int64_t> RequestTimeToMicros(
    const google::protobuf::Timestamp& ts, absl::string_view field) {
  auto t = TimestampToMicros(ts);
  if (!t.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", t.status().message()));
  }
  return t;
}

google::protobuf::Timestamp MicrosToTimestamp(int64_t micros) {
  google::protobuf::Timestamp ts;
  int64_t seconds = micros / 1000000;
  int64_t rem = micros % 1000000;
  if (rem < 0) {
    rem += 1000000;
    --seconds;
  }
  ts.set_seconds(seconds);
  ts.set_nanos(static_cast<int32_t>(rem * 1000));
  return ts;
}

std::string FormatMicros(int64_t micros) {
  const absl::Time t = absl::FromUnixMicros(micros);
  const bool whole_second = micros % 1000000 == 0;
  return absl::FormatTime(
      whole_second ? "%Y-%m-%d%ET%H:%M:%SZ" : "%Y-%m-%d%ET%H:%M:%E6SZ", t,
      absl::UTCTimeZone());
}

absl::StatusOr<TimeUnit> ParseTimeUnit(absl::string_view s) {
  if (s == "s") return TimeUnit::kSeconds;
  if (s == "ms") return TimeUnit::kMillis;
  if (s == "us") return TimeUnit::kMicros;
  if (s == "none" || s.empty()) return TimeUnit::kNone;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown time unit '", s, "' (want s, ms or us)"));
}

namespace {

absl::StatusOr<int64_t> ScaleToMicros(int64_t v, int64_t factor,
                                      absl::string_view text) {
  if (v > std::numeric_limits<int64_t>::max() / factor ||
      v < std::numeric_limits<int64_t>::min() / factor) {
    return absl::InvalidArgumentError(
        absl::StrCat("time '", text, "' out of range"));
  }
  const int64_t us = v * factor;
  if (us < kMinMicros || us > kMaxMicros) {
    return absl::InvalidArgumentError(
        absl::StrCat("time '", text, "' is outside 0001-01-01..9999-12-31"));
  }
  return us;
}

}  // namespace

absl::StatusOr<int64_t> ParseTime(absl::string_view text, TimeUnit bare_unit) {
  const absl::string_view t = absl::StripAsciiWhitespace(text);
  if (t.empty()) return absl::InvalidArgumentError("empty time");
  // Integer forms.
  const bool numeric_start = absl::ascii_isdigit(t[0]) || t[0] == '-';
  if (numeric_start && t.find_first_of("T:") == absl::string_view::npos) {
    absl::string_view digits = t;
    int64_t factor = 0;
    if (absl::ConsumeSuffix(&digits, "us")) {
      factor = 1;
    } else if (absl::ConsumeSuffix(&digits, "ms")) {
      factor = 1000;
    } else if (absl::ConsumeSuffix(&digits, "s")) {
      factor = 1000000;
    } else if (bare_unit == TimeUnit::kSeconds) {
      factor = 1000000;
    } else if (bare_unit == TimeUnit::kMillis) {
      factor = 1000;
    } else if (bare_unit == TimeUnit::kMicros) {
      factor = 1;
    }
    int64_t v;
    if (factor != 0 && absl::SimpleAtoi(digits, &v)) {
      return ScaleToMicros(v, factor, t);
    }
    if (factor == 0 && absl::SimpleAtoi(digits, &v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "time '", t,
          "' is a bare integer: add a unit suffix (s, ms, us) or a time unit "
          "flag"));
    }
  }
  absl::Time parsed;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, std::string(t), &parsed, &err)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad time '", t,
        "': want RFC 3339 (2026-11-24T09:00:00Z, any offset) or an integer "
        "with a unit suffix (1700000000s, ms, us)"));
  }
  const absl::Duration since = parsed - absl::UnixEpoch();
  const int64_t us = absl::ToInt64Microseconds(since);
  // ToInt64Microseconds truncates toward zero; floor instead.
  int64_t floored = us;
  if (absl::FromUnixMicros(us) > parsed) --floored;
  if (floored < kMinMicros || floored > kMaxMicros) {
    return absl::InvalidArgumentError(
        absl::StrCat("time '", t, "' is outside 0001-01-01..9999-12-31"));
  }
  return floored;
}

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

}  // namespace rawfeat
