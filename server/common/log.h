#ifndef RAWFEAT_SERVER_COMMON_LOG_H_
#define RAWFEAT_SERVER_COMMON_LOG_H_

// The project's logger: one line per call on stderr, UTC-stamped.
// Thread-safe (one write(2) per line).

#include "absl/strings/string_view.h"

namespace rawfeat {

enum class LogLevel { kInfo, kWarning, kError };

void Log(LogLevel level, absl::string_view message);

inline void LogInfo(absl::string_view m) { Log(LogLevel::kInfo, m); }
inline void LogWarning(absl::string_view m) { Log(LogLevel::kWarning, m); }
inline void LogError(absl::string_view m) { Log(LogLevel::kError, m); }

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_COMMON_LOG_H_
