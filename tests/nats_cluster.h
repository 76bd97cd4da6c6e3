// Real nats-server processes for tests: one server, or a JetStream cluster of several, on
// loopback and free ports, with their JetStream data in a temporary directory. Servers can be
// killed, stopped (SIGSTOP), continued and restarted on the same ports and data, as the fault
// tests need. The binary is Debian's nats-server (installed by .ci/install-deps).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/process.h"
#include "tests/test_util.h"

namespace fidelis::testing {

// A TCP port on 127.0.0.1 that nothing listens on right now.
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

inline const char* NatsServerBinary() {
  return access("/usr/sbin/nats-server", X_OK) == 0 ? "/usr/sbin/nats-server" : "nats-server";
}

class NatsCluster {
 public:
  // `size` servers: one stands alone, more form a JetStream cluster.
  explicit NatsCluster(int size) {
    for (int i = 0; i < size; ++i) {
      servers_.push_back({FreePort(), size > 1 ? FreePort() : 0, nullptr});
    }
    for (int i = 0; i < size; ++i) Start(i);
  }

  int size() const { return static_cast<int>(servers_.size()); }
  // "nats://127.0.0.1:P1,nats://127.0.0.1:P2,..." for --nats_url.
  std::string urls() const {
    std::vector<std::string> out;
    for (const Server& s : servers_) out.push_back(url_of(s));
    return absl::StrJoin(out, ",");
  }
  std::vector<std::string> url_list() const {
    std::vector<std::string> out;
    for (const Server& s : servers_) out.push_back(url_of(s));
    return out;
  }

  // Starts server `i` again, on its ports and data.
  void Start(int i) {
    Server& s = servers_[i];
    std::vector<std::string> argv = {NatsServerBinary(),
                                     "-a",
                                     "127.0.0.1",
                                     "-p",
                                     absl::StrCat(s.port),
                                     "-js",
                                     "-sd",
                                     dir_.Sub(absl::StrCat("n", i)),
                                     "-n",
                                     absl::StrCat("n", i),
                                     "-l",
                                     dir_.Sub(absl::StrCat("n", i, ".log"))};
    if (servers_.size() > 1) {
      std::vector<std::string> routes;
      for (const Server& other : servers_) {
        routes.push_back(absl::StrCat("nats://127.0.0.1:", other.cluster_port));
      }
      argv.insert(argv.end(), {"--cluster_name", "fidelis-test", "--cluster",
                               absl::StrCat("nats://127.0.0.1:", s.cluster_port), "--routes",
                               absl::StrJoin(routes, ",")});
    }
    s.process = std::make_unique<Child>(argv);
  }
  void Kill(int i) {
    if (servers_[i].process) {
      servers_[i].process->Signal(SIGKILL);
      servers_[i].process->Wait();
    }
  }
  void Restart(int i) {
    Kill(i);
    Start(i);
  }
  void Pause(int i) { servers_[i].process->Signal(SIGSTOP); }
  void Resume(int i) { servers_[i].process->Signal(SIGCONT); }
  void KillAll() {
    for (int i = 0; i < size(); ++i) Kill(i);
  }
  void StartAll() {
    for (int i = 0; i < size(); ++i) Start(i);
  }

 private:
  struct Server {
    int port;
    int cluster_port;
    std::unique_ptr<Child> process;
  };
  static std::string url_of(const Server& s) { return absl::StrCat("nats://127.0.0.1:", s.port); }

  TempDir dir_;
  std::vector<Server> servers_;
};

}  // namespace fidelis::testing
