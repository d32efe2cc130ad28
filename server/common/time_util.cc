#include "server/common/time_util.h"

#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace rawfeat {

absl::StatusOr<int64_t> TimestampToMicros(
    const google::protobuf::Timestamp& ts) {
  return TimestampToMicros(ts.seconds(), ts.nanos());
}

absl::StatusOr<int64_t> TimestampToMicros(int64_t seconds, int32_t nanos) {
  if (nanos < 0 || nanos >= 1000000000) {
    return absl::InvalidArgumentError(
        absl::StrCat("timestamp nanos ", nanos, " out of [0, 1e9)"));
  }
  const int64_t min_s = kMinMicros / 1000000;
  const int64_t max_s = kMaxMicros / 1000000;
  if (seconds < min_s || seconds > max_s) {
    return absl::InvalidArgumentError(absl::StrCat(
        "timestamp ", seconds, "s is outside 0001-01-01..9999-12-31"));
  }
  return seconds * 1000000 + nanos / 1000;
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

// The strict form files and rawfeat itself write,
// "YYYY-MM-DDTHH:MM:SS[.digits](Z|+HH:MM|-HH:MM)", read without
// absl::ParseTime (which took a tenth of a CSV ingest's client CPU).
// Digits past the sixth of the fraction are dropped (floor). False if `t`
// is not in that form or a part is out of range (a leap second, an offset
// of 24 hours): absl then reads it, accepting the rest of RFC 3339, or
// names what is wrong.
bool ParseRfc3339Strict(absl::string_view t, int64_t* micros) {
  auto digits = [&t](size_t at, size_t n, int* v) {
    if (at + n > t.size()) return false;
    int x = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (!absl::ascii_isdigit(t[i])) return false;
      x = x * 10 + (t[i] - '0');
    }
    *v = x;
    return true;
  };
  int year, month, day, hour, minute, second;
  if (!digits(0, 4, &year) || t.size() < 20 || t[4] != '-' ||
      !digits(5, 2, &month) || t[7] != '-' || !digits(8, 2, &day) ||
      t[10] != 'T' || !digits(11, 2, &hour) || t[13] != ':' ||
      !digits(14, 2, &minute) || t[16] != ':' || !digits(17, 2, &second)) {
    return false;
  }
  if (year < 1 || hour > 23 || minute > 59 || second > 59) return false;
  // absl normalizes a date out of range (Feb 30 -> Mar 2): then it is not
  // a date of this form.
  const absl::CivilSecond civil(year, month, day, hour, minute, second);
  if (civil.month() != month || civil.day() != day) return false;
  size_t at = 19;
  int64_t fraction_us = 0;
  if (t[at] == '.') {
    const size_t first = ++at;
    int64_t scale = 100000;
    while (at < t.size() && absl::ascii_isdigit(t[at])) {
      fraction_us += (t[at] - '0') * scale;
      scale /= 10;
      ++at;
    }
    if (at == first) return false;
  }
  int64_t offset_s = 0;
  if (at < t.size() && t[at] == 'Z') {
    ++at;
  } else if (at < t.size() && (t[at] == '+' || t[at] == '-')) {
    int oh, om;
    if (!digits(at + 1, 2, &oh) || at + 3 >= t.size() || t[at + 3] != ':' ||
        !digits(at + 4, 2, &om) || oh > 23 || om > 59) {
      return false;
    }
    offset_s = (oh * 3600 + om * 60) * (t[at] == '-' ? -1 : 1);
    at += 6;
  } else {
    return false;
  }
  if (at != t.size()) return false;
  const int64_t seconds =
      (civil - absl::CivilSecond(1970, 1, 1, 0, 0, 0)) - offset_s;
  *micros = seconds * 1000000 + fraction_us;
  return true;
}

}  // namespace

absl::StatusOr<int64_t> ParseTime(absl::string_view text, TimeUnit bare_unit) {
  const absl::string_view t = absl::StripAsciiWhitespace(text);
  if (t.empty()) return absl::InvalidArgumentError("empty time");
  // Integer forms.
  const bool numeric_start = absl::ascii_isdigit(t[0]) || t[0] == '-';
  if (numeric_start && t.find(':') == absl::string_view::npos &&
      t.find('T') == absl::string_view::npos) {
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
  int64_t floored;
  if (!ParseRfc3339Strict(t, &floored)) {
    absl::Time parsed;
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, std::string(t), &parsed, &err)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad time '", t,
          "': want RFC 3339 (2026-11-24T09:00:00Z, any offset) or an integer "
          "with a unit suffix (1700000000s, ms, us)"));
    }
    const absl::Duration since = parsed - absl::UnixEpoch();
    // ToInt64Microseconds truncates toward zero; floor instead.
    floored = absl::ToInt64Microseconds(since);
    if (absl::FromUnixMicros(floored) > parsed) --floored;
  }
  if (floored < kMinMicros || floored > kMaxMicros) {
    return absl::InvalidArgumentError(
        absl::StrCat("time '", t, "' is outside 0001-01-01..9999-12-31"));
  }
  return floored;
}

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

}  // namespace rawfeat
