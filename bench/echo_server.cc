// The transport's floor for the load tools: a gRPC server built from the
// same libgrpc++ as rawfeatd that implements only
// rawfeat.v1.FeatureStore/GetFeatures, answering every request with the
// same pre-serialized response (a real GetFeaturesResponse saved by the load
// tool) on gRPC's thread, as rawfeatd's GetFeatures does. No storage, no
// parsing, no auth: what is left is gRPC, TLS if asked for, and the
// loopback.
//
//   rawfeat_echo --listen=127.0.0.1:0 --port_file=F --response_file=R
//                [--tls_cert=PEM --tls_key=PEM]
// Other --flags (those the load tools pass to rawfeatd) are ignored.

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/server_credentials.h"
#include "rawfeat/v1/rawfeat.grpc.pb.h"

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

class EchoService final : public rawfeat::v1::FeatureStore::
                              WithRawCallbackMethod_GetFeatures<
                                  rawfeat::v1::FeatureStore::Service> {
 public:
  explicit EchoService(std::string response) : response_(std::move(response)) {}

  grpc::ServerUnaryReactor* GetFeatures(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer*,
                                        grpc::ByteBuffer* response) override {
    grpc::Slice slice(response_);
    *response = grpc::ByteBuffer(&slice, 1);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  const std::string response_;
};

}  // namespace

int main(int argc, char** argv) {
  // SIGTERM/SIGINT are taken by sigwait below; blocked before gRPC starts
  // its threads, so none of them takes the signal instead.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    if (absl::StartsWith(arg, "--") && eq != std::string::npos) {
      flags[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
    }
  }
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::InsecureServerCredentials();
  if (!flags["tls_cert"].empty()) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back(
        {Slurp(flags["tls_key"]), Slurp(flags["tls_cert"])});
    credentials = grpc::SslServerCredentials(ssl);
  }
  EchoService service(Slurp(flags["response_file"]));
  int port = 0;
  grpc::ServerBuilder builder;
  const std::string listen =
      flags.count("listen") ? flags["listen"] : "127.0.0.1:0";
  builder.AddListeningPort(listen, credentials, &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "rawfeat_echo: cannot listen on %s\n",
                 listen.c_str());
    return 1;
  }
  if (!flags["port_file"].empty()) {
    const std::string tmp = flags["port_file"] + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), flags["port_file"].c_str());
  }
  int sig = 0;
  sigwait(&stop, &sig);
  server->Shutdown();
  return 0;
}
