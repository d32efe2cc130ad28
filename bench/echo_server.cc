// The transport's floor for the load tools: a gRPC server built from the
// same libgrpc++ as rawfeatd that implements only two methods of
// rawfeat.v1.FeatureStore:
// - GetFeatures answers every request with the same pre-serialized response
//   (a real GetFeaturesResponse saved by the load tool) on gRPC's thread, as
//   rawfeatd's GetFeatures does;
// - IngestStream parses each IngestRequest (any server must) and counts its
//   events, then answers accepted = that count; nothing is stored.
// No storage, no validation, no auth: what is left is gRPC, protobuf, TLS
// if asked for, and the loopback.
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
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/server_credentials.h"
#include "rawfeat/v1/rawfeat.grpc.pb.h"

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// Reads an IngestStream to its end, counting events, then answers.
class CountingReader final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  explicit CountingReader(grpc::ByteBuffer* response) : response_(response) {
    StartRead(&request_);
  }
  void OnReadDone(bool ok) override {
    if (ok) {
      rawfeat::v1::IngestRequest parsed;
      if (!grpc::GenericDeserialize<grpc::ProtoBufferReader,
                                    rawfeat::v1::IngestRequest>(&request_,
                                                                &parsed)
               .ok()) {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad batch"));
        return;
      }
      answer_.set_accepted(answer_.accepted() + parsed.events_size());
      answer_.set_batches(answer_.batches() + 1);
      StartRead(&request_);
      return;
    }
    bool own_buffer = false;
    grpc::GenericSerialize<grpc::ProtoBufferWriter,
                           rawfeat::v1::IngestResponse>(answer_, response_,
                                                        &own_buffer);
    Finish(grpc::Status::OK);
  }
  void OnDone() override { delete this; }

 private:
  grpc::ByteBuffer* const response_;
  grpc::ByteBuffer request_;
  rawfeat::v1::IngestResponse answer_;
};

class EchoService final
    : public rawfeat::v1::FeatureStore::WithRawCallbackMethod_GetFeatures<
          rawfeat::v1::FeatureStore::WithRawCallbackMethod_IngestStream<
              rawfeat::v1::FeatureStore::Service>> {
 public:
  explicit EchoService(std::string response) : response_(std::move(response)) {}

  grpc::ServerReadReactor<grpc::ByteBuffer>* IngestStream(
      grpc::CallbackServerContext*, grpc::ByteBuffer* response) override {
    return new CountingReader(response);
  }

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
  // As rawfeatd does (server/main.cc): no lock-order checks.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
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
