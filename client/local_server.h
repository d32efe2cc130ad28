#ifndef RAWFEAT_CLIENT_LOCAL_SERVER_H_
#define RAWFEAT_CLIENT_LOCAL_SERVER_H_

// Runs a rawfeatd binary as a child process on 127.0.0.1 (any free port),
// for load tools and crash tests. Not thread-safe.

#include <sys/types.h>

#include <string>
#include <vector>

namespace rawfeat {

class LocalServer {
 public:
  // Starts `binary` with --listen=127.0.0.1:0, --data_dir, --port_file in
  // `work_dir`, plus `extra_flags`, and waits up to 30 s for it to serve.
  // Check ok() afterwards. The child is killed when the calling thread
  // ends, so construct it on a thread that outlives it.
  LocalServer(const std::string& binary, const std::string& data_dir,
              const std::string& work_dir,
              const std::vector<std::string>& extra_flags = {});
  ~LocalServer();  // SIGKILL if still running

  bool ok() const { return port_ > 0; }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string address() const;

  // Peak resident set size of the child so far, in bytes (VmHWM).
  long long PeakRssBytes() const;
  // Resident set size now, in bytes (VmRSS).
  long long RssBytes() const;
  // CPU time the child has used so far, user + system, in seconds (from
  // /proc/PID/stat); -1 if it cannot be read. A difference of two readings
  // is the server's cost of what ran between them, which varies far less
  // from run to run than a throughput does on a shared machine.
  double CpuSeconds() const;

  void Kill();      // SIGKILL and reap
  int Terminate();  // SIGTERM, reap, return the wait status

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace rawfeat

#endif  // RAWFEAT_CLIENT_LOCAL_SERVER_H_
