#include "client/client.h"

#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/client_unary_call.h"
#include "grpcpp/impl/rpc_method.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/sync_stream.h"

namespace rawfeat {

absl::Status FromGrpcStatus(const grpc::Status& status, bool tls,
                            const std::string& address) {
  if (status.ok()) return absl::OkStatus();
  std::string message = status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    // gRPC names a failed handshake deep in its message; say what it means.
    if (absl::StrContains(message, "certificate verify failed")) {
      absl::StrAppend(&message,
                      " (the server's certificate is not signed by the CA "
                      "given with --tls-ca, has expired, or is not for this "
                      "name: see --tls-server-name)");
    } else if (absl::StrContains(message, "Socket closed")) {
      absl::StrAppend(
          &message,
          tls ? " (the server closed the TLS connection: it may require a "
                "client certificate (--tls-cert/--tls-key) or not use TLS)"
              : " (the server closed the connection: it may require TLS, "
                "--tls or --tls-ca)");
    } else if (absl::StrContains(message, "failed to connect")) {
      // gRPC's text is long ("failed to connect to all addresses; last
      // error: UNKNOWN: ipv4:...: Failed to connect to remote host:
      // Connection refused"): keep its last reason.
      const size_t colon = message.rfind(": ");
      const std::string reason = absl::AsciiStrToLower(
          colon == std::string::npos ? message : message.substr(colon + 2));
      message = absl::StrCat(
          "no rawfeatd at ", address.empty() ? "that address" : address, ": ",
          reason,
          " (is it running? start one with `bash scripts/serve.sh`, or "
          "name another with --server HOST:PORT)");
    }
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      message);
}

Client::Client(const std::string& address, ClientOptions options)
    : options_(options), address_(address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  // gRPC waits 1 s (growing to 2 min) before reconnecting after a refused
  // connection, and fails calls at once meanwhile: a retried call to a
  // server that is starting would keep failing. Reconnect sooner.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (options.tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_pem;
    ssl.pem_cert_chain = options.tls_cert_pem;
    ssl.pem_private_key = options.tls_key_pem;
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
  }
  channel_ = grpc::CreateCustomChannel(address, credentials, args);
  stub_ = v1::FeatureStore::NewStub(channel_);
}

void Client::SetDeadline(grpc::ClientContext* context, bool streaming) const {
  if (!options_.token.empty()) {
    context->AddMetadata("authorization", "Bearer " + options_.token);
  }
  context->set_deadline(
      std::chrono::system_clock::now() +
      (streaming ? options_.stream_timeout : options_.timeout));
}

template <typename Response, typename Call>
absl::StatusOr<Response> Client::Unary(const Call& call) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, false);
  Response response;
  grpc::Status s = call(&ctx, &response);
  if (!s.ok()) return FromGrpcStatus(s, options_.tls, address_);
  return response;
}

bool Client::WaitForConnected(std::chrono::milliseconds timeout) {
  return channel_->WaitForConnected(std::chrono::system_clock::now() + timeout);
}

absl::StatusOr<v1::ApplyDefinitionsResponse> Client::ApplyDefinitions(
    const v1::ApplyDefinitionsRequest& request) {
  return Unary<v1::ApplyDefinitionsResponse>(
      [&](grpc::ClientContext* ctx, v1::ApplyDefinitionsResponse* response) {
        return stub_->ApplyDefinitions(ctx, request, response);
      });
}

absl::StatusOr<v1::ListDefinitionsResponse> Client::ListDefinitions() {
  return Unary<v1::ListDefinitionsResponse>(
      [&](grpc::ClientContext* ctx, v1::ListDefinitionsResponse* response) {
        return stub_->ListDefinitions(ctx, v1::ListDefinitionsRequest(),
                                      response);
      });
}

absl::StatusOr<v1::StreamDef> Client::FindStream(const std::string& name) {
  auto defs = ListDefinitions();
  if (!defs.ok()) return defs.status();
  for (const auto& s : defs->streams()) {
    if (s.definition().name() == name) return s.definition();
  }
  return absl::NotFoundError(
      absl::StrCat("stream '", name, "' is not defined on the server"));
}

absl::StatusOr<v1::IngestResponse> Client::Ingest(
    const v1::IngestRequest& request) {
  return Unary<v1::IngestResponse>(
      [&](grpc::ClientContext* ctx, v1::IngestResponse* response) {
        return stub_->Ingest(ctx, request, response);
      });
}

absl::StatusOr<v1::IngestResponse> Client::IngestEncoded(
    absl::string_view request) {
  // The method the generated stub calls, with the request's bytes as they
  // are (gRPC's ByteBuffer serialization) instead of a message.
  static const std::string kMethod =
      absl::StrCat("/", v1::FeatureStore::service_full_name(), "/Ingest");
  const grpc::internal::RpcMethod method(
      kMethod.c_str(), grpc::internal::RpcMethod::NORMAL_RPC, channel_);
  grpc::Slice slice(request.data(), request.size());
  const grpc::ByteBuffer buffer(&slice, 1);
  return Unary<v1::IngestResponse>(
      [&](grpc::ClientContext* ctx, v1::IngestResponse* response) {
        return grpc::internal::BlockingUnaryCall<
            grpc::ByteBuffer, v1::IngestResponse, grpc::ByteBuffer,
            grpc::protobuf::MessageLite>(channel_.get(), method, ctx, buffer,
                                         response);
      });
}

absl::StatusOr<v1::IngestResponse> Client::IngestStreamEncoded(
    const std::function<bool(std::string*)>& next,
    v1::IngestResponse* applied) {
  static const std::string kMethod = absl::StrCat(
      "/", v1::FeatureStore::service_full_name(), "/IngestStream");
  const grpc::internal::RpcMethod method(
      kMethod.c_str(), grpc::internal::RpcMethod::CLIENT_STREAMING, channel_);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, true);
  v1::IngestResponse response;
  std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer(
      grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(
          channel_.get(), method, &ctx, &response));
  std::string request;
  while (next(&request)) {
    grpc::Slice slice(request);
    const grpc::ByteBuffer buffer(&slice, 1);
    if (!writer->Write(buffer)) break;  // the server ended the call early
    request.clear();
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (applied != nullptr) {
    applied->Clear();
    if (!s.ok() && !applied->ParseFromString(s.error_details())) {
      applied->Clear();
    }
  }
  if (!s.ok()) return FromGrpcStatus(s, options_.tls, address_);
  return response;
}

absl::StatusOr<v1::IngestResponse> Client::IngestStream(
    const std::function<bool(v1::IngestRequest*)>& next) {
  v1::IngestRequest request;
  return IngestStreamEncoded([&](std::string* bytes) {
    request.Clear();
    if (!next(&request)) return false;
    request.SerializeToString(bytes);
    return true;
  });
}

namespace {

// Reads a server stream to its end: `read_one(reader)` reads the next
// message (false at the end), `handle()` takes it (false stops: the call
// is cancelled, which is success unless `*failed` was set).
template <typename Reader, typename ReadOne, typename Handle>
absl::Status DrainStream(grpc::ClientContext* ctx, Reader* reader,
                         ReadOne read_one, Handle handle,
                         const absl::Status* failed, bool tls,
                         const std::string& address) {
  bool stopped = false;
  while (read_one(reader)) {
    if (!handle()) {
      stopped = true;
      ctx->TryCancel();
      break;
    }
  }
  grpc::Status s = reader->Finish();
  if (!failed->ok()) return *failed;
  if (stopped && s.error_code() == grpc::StatusCode::CANCELLED) {
    return absl::OkStatus();
  }
  return FromGrpcStatus(s, tls, address);
}

// Hands every message of a server stream to `on_chunk`; cancels the call
// (and reports success) if it returns false. Each message is parsed into an
// arena that is reset after it: a chunk of a thousand events with field
// maps is thousands of small allocations otherwise.
template <typename Chunk>
absl::Status ReadAll(grpc::ClientContext* ctx,
                     grpc::ClientReader<Chunk>* reader,
                     const std::function<bool(const Chunk&)>& on_chunk,
                     bool tls, const std::string& address) {
  google::protobuf::ArenaOptions arena_options;
  arena_options.start_block_size = 64 << 10;
  arena_options.max_block_size = 1 << 20;
  google::protobuf::Arena arena(arena_options);
  Chunk* chunk = nullptr;
  const absl::Status ok;
  return DrainStream(
      ctx, reader,
      [&](grpc::ClientReader<Chunk>* r) {
        arena.Reset();
        chunk = google::protobuf::Arena::CreateMessage<Chunk>(&arena);
        return r->Read(chunk);
      },
      [&] { return on_chunk(*chunk); }, &ok, tls, address);
}

}  // namespace

absl::Status EventChunkReader::Read(absl::string_view bytes) {
  if (ReadEventsChunk(bytes, &batch_, &watermark_)) return absl::OkStatus();
  ++parsed_chunks_;
  if (!parsed_.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    batch_.Clear();
    watermark_ = 0;
    return absl::DataLossError(
        absl::StrCat("a ReadEvents response of ", bytes.size(),
                     " bytes is not a ReadEventsResponse message"));
  }
  IngestBatchOf(parsed_.events(), &batch_);
  watermark_ = parsed_.watermark();
  parsed_bytes_.resize(batch_.events.size());
  for (size_t i = 0; i < batch_.events.size(); ++i) {
    parsed_.events(static_cast<int>(i)).SerializeToString(&parsed_bytes_[i]);
    batch_.events[i].bytes = parsed_bytes_[i];
  }
  return absl::OkStatus();
}

absl::Status Client::ReadEvents(
    const v1::ReadEventsRequest& request,
    const std::function<bool(const v1::ReadEventsResponse&)>& on_chunk) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, true);
  auto reader = stub_->ReadEvents(&ctx, request);
  return ReadAll(&ctx, reader.get(), on_chunk, options_.tls, address_);
}

absl::Status Client::ReadEventViews(
    const v1::ReadEventsRequest& request,
    const std::function<bool(const IngestBatch&, uint64_t)>& on_chunk) {
  // The generated stub's call, with the responses as they arrive
  // (gRPC's ByteBuffer) instead of parsed messages.
  static const std::string kMethod =
      absl::StrCat("/", v1::FeatureStore::service_full_name(), "/ReadEvents");
  const grpc::internal::RpcMethod method(
      kMethod.c_str(), grpc::internal::RpcMethod::SERVER_STREAMING, channel_);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, true);
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
          channel_.get(), method, &ctx, request));
  grpc::ByteBuffer buffer;
  grpc::Slice slice;
  EventChunkReader chunk;
  absl::Status failed;
  return DrainStream(
      &ctx, reader.get(),
      [&](grpc::ClientReader<grpc::ByteBuffer>* r) { return r->Read(&buffer); },
      [&] {
        // A message may arrive in pieces; one slice holds it whole.
        if (!buffer.TrySingleSlice(&slice).ok() &&
            !buffer.DumpToSingleSlice(&slice).ok()) {
          failed = absl::DataLossError("a ReadEvents response is unreadable");
          return false;
        }
        failed = chunk.Read(absl::string_view(
            reinterpret_cast<const char*>(slice.begin()), slice.size()));
        return failed.ok() && on_chunk(chunk.events(), chunk.watermark());
      },
      &failed, options_.tls, address_);
}

absl::Status Client::Snapshot(
    const v1::SnapshotRequest& request,
    const std::function<bool(const v1::SnapshotChunk&)>& on_chunk) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, true);
  auto reader = stub_->Snapshot(&ctx, request);
  return ReadAll(&ctx, reader.get(), on_chunk, options_.tls, address_);
}

absl::Status Client::JoinFeatures(
    const v1::JoinFeaturesRequest& first,
    const std::function<absl::StatusOr<bool>(v1::JoinFeaturesRequest*)>& next,
    const std::function<bool(const v1::JoinFeaturesResponse&)>& on_response) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, true);
  auto stream = stub_->JoinFeatures(&ctx);
  absl::Status input_status;
  std::thread writer([&] {
    if (!stream->Write(first)) return;  // the call ended: Finish says why
    v1::JoinFeaturesRequest message;
    while (true) {
      message.Clear();
      absl::StatusOr<bool> more = next(&message);
      if (!more.ok()) {
        input_status = more.status();
        ctx.TryCancel();
        return;
      }
      if (!*more) break;
      if (!stream->Write(message)) return;
    }
    stream->WritesDone();
  });
  v1::JoinFeaturesResponse response;
  bool stopped = false;
  while (stream->Read(&response)) {
    if (!on_response(response)) {
      stopped = true;
      ctx.TryCancel();  // also unblocks a writer waiting on flow control
      break;
    }
  }
  // A failing `next` cancelled the call, which ended the reads too.
  writer.join();
  grpc::Status s = stream->Finish();
  if (!input_status.ok()) return input_status;
  if (stopped && s.error_code() == grpc::StatusCode::CANCELLED) {
    return absl::OkStatus();
  }
  return FromGrpcStatus(s, options_.tls, address_);
}

absl::StatusOr<v1::GetFeaturesResponse> Client::GetFeatures(
    const v1::GetFeaturesRequest& request) {
  v1::GetFeaturesResponse response;
  absl::Status s = GetFeatures(request, &response);
  if (!s.ok()) return s;
  return response;
}

absl::Status Client::GetFeatures(const v1::GetFeaturesRequest& request,
                                 v1::GetFeaturesResponse* response) {
  response->Clear();
  grpc::ClientContext ctx;
  SetDeadline(&ctx, false);
  grpc::Status s = stub_->GetFeatures(&ctx, request, response);
  if (!s.ok()) return FromGrpcStatus(s, options_.tls, address_);
  return absl::OkStatus();
}

absl::StatusOr<v1::GetStatusResponse> Client::GetStatus() {
  return Unary<v1::GetStatusResponse>(
      [&](grpc::ClientContext* ctx, v1::GetStatusResponse* response) {
        return stub_->GetStatus(ctx, v1::GetStatusRequest(), response);
      });
}

absl::StatusOr<v1::BackupResponse> Client::Backup(const std::string& dir) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, true);
  v1::BackupRequest request;
  request.set_dir(dir);
  v1::BackupResponse response;
  grpc::Status s = stub_->Backup(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s, options_.tls, address_);
  return response;
}

absl::StatusOr<v1::EraseResponse> Client::Erase(const std::string& stream,
                                                const std::string& entity) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, true);
  v1::EraseRequest request;
  request.set_stream(stream);
  request.set_entity(entity);
  v1::EraseResponse response;
  grpc::Status s = stub_->Erase(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s, options_.tls, address_);
  return response;
}

absl::StatusOr<v1::ListErasuresResponse> Client::ListErasures() {
  return Unary<v1::ListErasuresResponse>(
      [&](grpc::ClientContext* ctx, v1::ListErasuresResponse* response) {
        return stub_->ListErasures(ctx, v1::ListErasuresRequest(), response);
      });
}

}  // namespace rawfeat
