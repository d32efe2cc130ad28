// Thread names: what `top -H`, `ps -L`, `perf` and gdb show for a thread
// of rawfeatd (RocksDB and gRPC name their own).

#ifndef RAWFEAT_SERVER_COMMON_THREAD_NAME_H_
#define RAWFEAT_SERVER_COMMON_THREAD_NAME_H_

#include <pthread.h>

#include <string>

namespace rawfeat {

// Names the calling thread `name`, cut to the 15 bytes Linux keeps. Best
// effort: a failure leaves the inherited name. Thread-safe.
inline void NameThisThread(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_COMMON_THREAD_NAME_H_
