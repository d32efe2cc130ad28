#include "client/local_server.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace rawfeat {

LocalServer::LocalServer(const std::string& binary, const std::string& data_dir,
                         const std::string& work_dir,
                         const std::vector<std::string>& extra_flags) {
  const std::string port_file = work_dir + "/rawfeatd.port";
  std::remove(port_file.c_str());
  std::vector<std::string> args = {binary, "--listen=127.0.0.1:0",
                                   "--data_dir=" + data_dir,
                                   "--port_file=" + port_file};
  args.insert(args.end(), extra_flags.begin(), extra_flags.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    // Never outlives this process (a test that crashes, a load tool
    // stopped with ^C): the kernel kills it when the forking thread ends.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  for (int i = 0; i < 600 && port_ == 0; ++i) {
    std::ifstream in(port_file);
    if (!(in >> port_)) {
      port_ = 0;
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {  // died at start-up
        pid_ = -1;
        return;
      }
      usleep(50 * 1000);
    }
  }
}

LocalServer::~LocalServer() {
  if (pid_ > 0) Kill();
}

std::string LocalServer::address() const {
  return "127.0.0.1:" + std::to_string(port_);
}

namespace {
// A "Name:   N kB" line of /proc/PID/status, in bytes; -1 if absent.
long long StatusBytes(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) == 0) {
      return std::stoll(line.substr(name.size())) * 1024;
    }
  }
  return -1;
}
}  // namespace

long long LocalServer::PeakRssBytes() const {
  return StatusBytes(pid_, "VmHWM:");
}

long long LocalServer::RssBytes() const { return StatusBytes(pid_, "VmRSS:"); }

double LocalServer::CpuSeconds() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
  std::string stat;
  if (pid_ <= 0 || !std::getline(in, stat)) return -1;
  // Fields after the command name (which may hold spaces), from field 3
  // (state) on: utime and stime are fields 14 and 15, in clock ticks.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  if (!fields) return -1;
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

void LocalServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int LocalServer::Terminate() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

}  // namespace rawfeat
