#ifndef RAWFEAT_CLIENT_CLIENT_H_
#define RAWFEAT_CLIENT_CLIENT_H_

// C++ client of rawfeat.v1.FeatureStore. Every call has a deadline and
// returns absl::Status / absl::StatusOr (the gRPC code and message are kept).
// Thread-safe: one Client may be shared by many threads.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rawfeat/v1/rawfeat.grpc.pb.h"
#include "server/common/ingest_batch.h"

namespace rawfeat {

struct ClientOptions {
  // Deadline of unary calls. Default: 30 s.
  std::chrono::milliseconds timeout{30000};
  // Deadline of streaming calls (replay, bulk ingest). Default: 1 h.
  std::chrono::milliseconds stream_timeout{3600 * 1000};
  // Largest message sent or received. Default: 64 MiB.
  int max_message_bytes = 64 << 20;
  // A bearer token sent with every call (servers with --auth_file).
  std::string token;
  // TLS to the server. Default: off (plain text, for loopback).
  bool tls = false;
  // PEM contents (not file names). Roots that sign the server's
  // certificate; empty = the system's roots.
  std::string tls_root_pem;
  // A client certificate chain and key, for servers that require mutual
  // TLS; both or neither.
  std::string tls_cert_pem;
  std::string tls_key_pem;
  // The name the server's certificate must carry when it differs from the
  // address's host (an IP address, a test certificate). Empty = the host.
  std::string tls_server_name;
};

// Reads the bytes of one ReadEventsResponse as views
// (server/common/ingest_batch.h): by hand when they are in the form
// rawfeatd writes, else (a server of another version: a field this client
// does not know, a list value) through protobuf's parser. Every event's
// `bytes` is its serialized v1::Event, seq included (which ingest ignores),
// so a copy can forward it as it is. Not thread-safe.
class EventChunkReader {
 public:
  // Reads `bytes`; the views point into them (or into this reader) until
  // the next Read. Errors: DATA_LOSS if protobuf cannot parse them either.
  absl::Status Read(absl::string_view bytes);

  const IngestBatch& events() const { return batch_; }
  uint64_t watermark() const { return watermark_; }
  // Chunks read through protobuf's parser so far.
  int64_t parsed_chunks() const { return parsed_chunks_; }

 private:
  IngestBatch batch_;
  uint64_t watermark_ = 0;
  int64_t parsed_chunks_ = 0;
  v1::ReadEventsResponse parsed_;
  std::vector<std::string> parsed_bytes_;  // per event of parsed_
};

class Client {
 public:
  // Creates a channel to `address` (host:port). Connects lazily.
  explicit Client(const std::string& address, ClientOptions options = {});

  absl::StatusOr<v1::ApplyDefinitionsResponse> ApplyDefinitions(
      const v1::ApplyDefinitionsRequest& request);
  absl::StatusOr<v1::ListDefinitionsResponse> ListDefinitions();
  absl::StatusOr<v1::IngestResponse> Ingest(const v1::IngestRequest& request);
  // Ingest of a request already in protobuf wire format (an
  // IngestRequest's bytes, e.g. from RecordMapper::AppendCsvToRequest),
  // sent as it is. The server parses it as any IngestRequest.
  absl::StatusOr<v1::IngestResponse> IngestEncoded(absl::string_view request);
  // IngestStream of requests already in wire format (IngestEncoded's):
  // `next` fills its argument and returns false when done. On failure
  // `*applied` (if not null) gets the server's counts of the batches it
  // wrote before the failing one (batches() of them; the call's status
  // details), else is cleared.
  absl::StatusOr<v1::IngestResponse> IngestStreamEncoded(
      const std::function<bool(std::string*)>& next,
      v1::IngestResponse* applied = nullptr);
  // Sends every batch produced by `next` (which fills its argument and
  // returns false when done) in one IngestStream call.
  absl::StatusOr<v1::IngestResponse> IngestStream(
      const std::function<bool(v1::IngestRequest*)>& next);
  // Calls `on_chunk` per received chunk; stops early if it returns false.
  // A chunk is valid only during its call (it lives in an arena reset after
  // it): copy what you keep.
  absl::Status ReadEvents(
      const v1::ReadEventsRequest& request,
      const std::function<bool(const v1::ReadEventsResponse&)>& on_chunk);
  // ReadEvents with each chunk read as views into its wire bytes
  // (EventChunkReader) instead of v1::Event messages, whose maps cost a
  // replay client more than the server's whole read. `on_chunk(events,
  // watermark)` per chunk, valid only during the call; stops early if it
  // returns false. Errors: ReadEvents', and DATA_LOSS for a chunk that is
  // not a ReadEventsResponse.
  absl::Status ReadEventViews(
      const v1::ReadEventsRequest& request,
      const std::function<bool(const IngestBatch& events, uint64_t watermark)>&
          on_chunk);
  absl::StatusOr<v1::GetFeaturesResponse> GetFeatures(
      const v1::GetFeaturesRequest& request);
  // The same call into `*response` (cleared first), which may live on the
  // caller's protobuf Arena: a 100-row answer is ~900 small messages, and
  // on an arena they are made and freed in a few blocks (a serving loop
  // keeps one arena per call, its first block on the stack). On error
  // `*response` holds nothing useful. Thread-safe as the other calls.
  absl::Status GetFeatures(const v1::GetFeaturesRequest& request,
                           v1::GetFeaturesResponse* response);
  // Calls `on_chunk` per received chunk; stops early if it returns false.
  // A chunk is valid only during its call.
  absl::Status Snapshot(
      const v1::SnapshotRequest& request,
      const std::function<bool(const v1::SnapshotChunk&)>& on_chunk);
  // One JoinFeatures call. Sends `first` (view, version, watermark, maybe
  // rows), then from a writer thread every message `next` fills until it
  // returns false, while this thread hands each response to `on_response`
  // (returning false cancels the call). An error from `next` cancels the
  // call and is returned. `next` runs on the writer thread.
  absl::Status JoinFeatures(
      const v1::JoinFeaturesRequest& first,
      const std::function<absl::StatusOr<bool>(v1::JoinFeaturesRequest*)>& next,
      const std::function<bool(const v1::JoinFeaturesResponse&)>& on_response);
  absl::StatusOr<v1::GetStatusResponse> GetStatus();
  // A backup of the whole store into `dir` on the server's machine (the
  // streaming deadline: a large store takes a while to copy).
  absl::StatusOr<v1::BackupResponse> Backup(const std::string& dir);
  // Erases every event of `entity` in `stream` (the streaming deadline: an
  // entity may have millions of events).
  absl::StatusOr<v1::EraseResponse> Erase(const std::string& stream,
                                          const std::string& entity);
  absl::StatusOr<v1::ListErasuresResponse> ListErasures();

  // Blocks until the channel is connected or `timeout` passes.
  bool WaitForConnected(std::chrono::milliseconds timeout);

  // The stream definition named `name`. Errors: NOT_FOUND.
  absl::StatusOr<v1::StreamDef> FindStream(const std::string& name);

 private:
  // Every call's context: its deadline and the bearer token.
  void SetDeadline(grpc::ClientContext* context, bool streaming) const;
  // One unary call with the unary deadline; `call(context, response)`.
  template <typename Response, typename Call>
  absl::StatusOr<Response> Unary(const Call& call);

  const ClientOptions options_;
  const std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::FeatureStore::Stub> stub_;
};

// grpc::Status -> absl::Status (same code and message; a connection
// failure gets a hint at its cause: a TLS handshake, a server that wants
// TLS or a client certificate, nothing listening at `address`). `tls`:
// whether the call used TLS.
absl::Status FromGrpcStatus(const grpc::Status& status, bool tls = false,
                            const std::string& address = "");

}  // namespace rawfeat

#endif  // RAWFEAT_CLIENT_CLIENT_H_
