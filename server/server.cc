#include "server/server.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/stubs/logging.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/common/thread_name.h"
#include "server/events/ingester.h"
#include "server/events/replayer.h"
#include "server/rpc/service.h"
#include "server/rpc/status_convert.h"
#include "server/schema/registry.h"
#include "server/storage/backup.h"
#include "server/views/view_engine.h"

namespace rawfeat {

namespace {

// Protobuf logs an ERROR line for every request holding a string that is
// not UTF-8; the client already gets INVALID_ARGUMENT for it, so a flood of
// bad requests must not become a flood of log lines. Others go to our log.
void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  if (absl::StrContains(message, "invalid UTF-8")) return;
  const std::string text =
      absl::StrCat("protobuf ", file, ":", line, ": ", message);
  if (level >= google::protobuf::LOGLEVEL_ERROR) {
    LogError(text);
  } else {
    LogWarning(text);
  }
}

// True for 127.0.0.0/8, ::1 and localhost.
bool IsLoopback(absl::string_view host) {
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    host = host.substr(1, host.size() - 2);
  }
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

absl::Status Readable(const std::string& path, const char* flag) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, ": cannot read the file"));
  }
  return absl::OkStatus();
}

// Why serving `options.listen` as configured is unsafe ("" if it is not):
// a non-loopback address in plain text, or with TLS but nothing that
// authenticates clients. Such a start needs --insecure_listen.
std::string InsecureReason(const ServerOptions& options) {
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  if (IsLoopback(host)) return "";
  if (options.tls.cert_file.empty()) {
    return absl::StrCat(
        "in plain text: anyone who can reach it can read and write every "
        "stream",
        options.auth_file.empty() ? "" : ", and see tokens");
  }
  if (options.tls.client_ca_file.empty() && options.auth_file.empty()) {
    return "without authentication: anyone who can reach it can read and "
           "write every stream";
  }
  return "";
}

// TLS credentials for the port (certificates watched for rotation), or
// insecure ones where that is allowed: loopback, or --insecure_listen.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const ServerOptions& options) {
  const TlsOptions& tls = options.tls;
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  if (tls.cert_file.empty()) {
    if (!tls.client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_client_ca needs --tls_cert and --tls_key");
    }
    if (!IsLoopback(host) && !options.insecure_listen) {
      return absl::FailedPreconditionError(absl::StrCat(
          "refusing to serve ", options.listen,
          " without TLS: anyone who can reach it could read and write every "
          "stream (and see tokens). Give --tls_cert/--tls_key with "
          "--tls_client_ca or --auth_file, listen on 127.0.0.1, or pass "
          "--insecure_listen to accept that"));
    }
    return grpc::InsecureServerCredentials();
  }
  RETURN_IF_ERROR(Readable(tls.cert_file, "--tls_cert"));
  RETURN_IF_ERROR(Readable(tls.key_file, "--tls_key"));
  if (!tls.client_ca_file.empty()) {
    RETURN_IF_ERROR(Readable(tls.client_ca_file, "--tls_client_ca"));
  } else if (!IsLoopback(host) && options.auth_file.empty() &&
             !options.insecure_listen) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to serve ", options.listen,
        " with TLS but without authentication: anyone who can reach it "
        "could read and write every stream. Give --tls_client_ca or "
        "--auth_file, or pass --insecure_listen to accept that"));
  }
  auto provider = tls.client_ca_file.empty()
                      ? std::make_shared<
                            grpc::experimental::FileWatcherCertificateProvider>(
                            tls.key_file, tls.cert_file, tls.refresh_seconds)
                      : std::make_shared<
                            grpc::experimental::FileWatcherCertificateProvider>(
                            tls.key_file, tls.cert_file, tls.client_ca_file,
                            tls.refresh_seconds);
  grpc::experimental::TlsServerCredentialsOptions tls_options(provider);
  tls_options.watch_identity_key_cert_pairs();
  if (tls.client_ca_file.empty()) {
    tls_options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    tls_options.watch_root_certs();
    tls_options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(tls_options);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerOptions& options) {
  google::protobuf::SetLogHandler(&ProtobufLog);
  std::unique_ptr<Server> server(new Server());
  // Flags that cannot work fail the start before the store is touched (an
  // --accept_data_loss start must not record a loss and then stop on a
  // bad certificate path).
  auto credentials = ServerCredentials(options);
  if (!credentials.ok()) return credentials.status();
  if (!options.auth_file.empty()) {
    auto auth = Authorizer::Load(options.auth_file);
    if (!auth.ok()) return auth.status();
    server->auth_ = std::move(*auth);
  }
  if (!options.restore_from.empty()) {
    auto restored = RestoreBackup(options.restore_from, options.data_dir);
    if (!restored.ok()) return restored.status();
    LogInfo(absl::StrCat("restored ", options.restore_from, " into ",
                         options.data_dir, ": watermark ", *restored));
  }
  EventStoreOptions store_options = options.store;
  store_options.statistics = !options.metrics_listen.empty();
  auto store = EventStore::Open(options.data_dir, store_options);
  if (!store.ok()) return store.status();
  server->store_ = std::move(*store);
  Ingester::Observer ingest_observer;
  if (!options.metrics_listen.empty()) {
    auto metrics = Metrics::Start(options.metrics_listen, server->store_.get());
    if (!metrics.ok()) return metrics.status();
    server->metrics_ = std::move(*metrics);
    ingest_observer = server->metrics_->IngestObserver();
  }
  server->shutdown_drain_ = options.shutdown_drain;
  server->registry_ = std::make_unique<Registry>(server->store_.get());
  absl::Status s = server->registry_->Load();
  if (!s.ok()) return s;
  if (!options.schemas_dir.empty()) {
    for (const auto& p :
         ApplySchemasDir(options.schemas_dir, server->registry_.get())) {
      LogWarning(absl::StrCat("definition problem: ", p));
    }
  }
  for (const auto& p : server->registry_->problems()) {
    LogWarning(absl::StrCat("definition not loaded: ", p));
  }
  IngestLimits ingest_limits = options.limits;
  ingest_limits.max_replay_message_bytes =
      static_cast<size_t>(options.max_message_bytes);
  server->ingester_ =
      std::make_unique<Ingester>(server->store_.get(), server->registry_.get(),
                                 ingest_limits, std::move(ingest_observer));
  Replayer::Options replay_options;
  replay_options.max_chunk_bytes =
      static_cast<size_t>(options.max_message_bytes);
  replay_options.chunk_bytes =
      std::min(replay_options.chunk_bytes, replay_options.max_chunk_bytes / 2);
  server->replayer_ = std::make_unique<Replayer>(
      server->store_.get(), server->registry_.get(), replay_options);
  const int analyst_threads =
      options.analyst_threads > 0
          ? options.analyst_threads
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  ViewEngine::Options view_options;
  view_options.analyst_threads = analyst_threads;
  view_options.lookup_threads =
      options.lookup_threads > 0
          ? options.lookup_threads
          : std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1,
                       4);
  view_options.max_entities = options.max_entities;
  view_options.tiles = options.tiles;
  view_options.tile_min_events = options.tile_min_events;
  view_options.tile_sealed_days = options.tile_sealed_days;
  // Room for the message's own framing under gRPC's limit.
  view_options.max_response_bytes =
      static_cast<size_t>(std::max(options.max_message_bytes - 4096, 4096));
  view_options.snapshot_chunk_bytes = std::min<size_t>(
      view_options.snapshot_chunk_bytes, view_options.max_response_bytes);
  server->views_ = std::make_unique<ViewEngine>(
      server->store_.get(), server->registry_.get(), view_options);
  JoinSession::Options join_options;
  join_options.max_run_rows = options.join_run_rows;
  join_options.threads = analyst_threads;
  join_options.max_response_bytes = view_options.max_response_bytes;
  server->service_ = std::make_unique<FeatureStoreService>(
      server->store_.get(), server->registry_.get(), server->ingester_.get(),
      server->replayer_.get(), server->views_.get(), join_options,
      options.streams, server->auth_.get(), server->metrics_.get());
  if (server->metrics_ != nullptr) {
    server->metrics_->set_views(server->views_.get());
  }

  grpc::EnableDefaultHealthCheckService(true);
  // Generic tools (grpcurl, grpc_cli) list and call the API by reflection.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, *credentials, &server->port_);
  builder.RegisterService(server->service_.get());
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  // gRPC sets SO_REUSEPORT by default, which lets a second rawfeatd bind a
  // port that one already serves (clients would alternate between two data
  // dirs). One server per port: a port in use fails the start.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(NewStatusInterceptorFactory());
  // After the status interceptor: counts the status it rewrote.
  if (server->metrics_ != nullptr) {
    interceptors.push_back(server->metrics_->NewInterceptorFactory());
  }
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.listen,
        ": the port is in use (is another rawfeatd running?) or the address "
        "is not this machine's"));
  }
  server->grpc_server_->GetHealthCheckService()->SetServingStatus(true);
  server->host_ = options.listen.substr(0, options.listen.rfind(':'));
  server->insecure_ = InsecureReason(options);
  if (!server->insecure_.empty()) {
    // At start and then periodically, so it is in every log excerpt.
    server->insecure_every_ = options.insecure_warning_every;
    server->WarnInsecure();
    server->warner_ = std::thread([s = server.get()] {
      NameThisThread("rf-warn");
      absl::MutexLock lock(&s->warner_mu_);
      while (!s->warner_mu_.AwaitWithTimeout(absl::Condition(&s->stopping_),
                                             s->insecure_every_)) {
        s->WarnInsecure();
      }
    });
  }
  LogInfo(absl::StrCat(
      "serving on ", server->address(), ", data in ", options.data_dir,
      ", watermark ", server->store_->watermark(),
      options.store.sync ? "" : ", sync=false",
      server->metrics_ == nullptr
          ? ""
          : absl::StrCat(", metrics on http://", server->metrics_->address(),
                         "/metrics")));
  return server;
}

void Server::WarnInsecure() const {
  LogWarning(
      absl::StrCat("--insecure_listen: serving ", address(), " ", insecure_));
}

absl::Status Server::ReloadAuth() {
  return auth_ == nullptr ? absl::OkStatus() : auth_->Reload();
}

std::string Server::address() const { return absl::StrCat(host_, ":", port_); }

std::string Server::metrics_address() const {
  return metrics_ == nullptr ? "" : metrics_->address();
}

void Server::Drain() {
  if (grpc_server_ != nullptr) {
    grpc_server_->GetHealthCheckService()->SetServingStatus(false);
  }
}

void Server::Shutdown() {
  bool first = false;
  {
    absl::MutexLock lock(&warner_mu_);
    first = !stopping_;
    stopping_ = true;
  }
  if (first && grpc_server_ != nullptr) {
    Drain();
    absl::SleepFor(shutdown_drain_);
  }
  if (warner_.joinable() && warner_.get_id() != std::this_thread::get_id()) {
    warner_.join();
  }
  if (grpc_server_ != nullptr) {
    grpc_server_->Shutdown(std::chrono::system_clock::now() +
                           std::chrono::seconds(5));
  }
}

void Server::Wait() {
  if (grpc_server_ != nullptr) grpc_server_->Wait();
}

Server::~Server() {
  Shutdown();
  Wait();
  grpc_server_.reset();
  service_.reset();
  metrics_.reset();
  views_.reset();
  replayer_.reset();
  ingester_.reset();
  registry_.reset();
  store_.reset();
}

}  // namespace rawfeat
