#ifndef RAWFEAT_SERVER_RPC_STREAM_CALLS_H_
#define RAWFEAT_SERVER_RPC_STREAM_CALLS_H_

// The reactors of the streaming methods. Each runs its handler on a thread
// of its own (so a slow client or a long computation never holds one of
// gRPC's threads), keeps at most one response queued behind the one in
// flight, ends calls whose client stalls, and keeps the CallLease it was
// admitted with until the call is gone. Internal to server/rpc.

#include <functional>
#include <string>

#include "grpcpp/grpcpp.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/events/ingester.h"
#include "server/events/replayer.h"
#include "server/rpc/auth.h"
#include "server/rpc/threaded_stream.h"
#include "server/storage/event_store.h"
#include "server/views/join.h"
#include "server/views/view_engine.h"

namespace rawfeat {

// REQUIRES for all: the pointers outlive the call.

// The replay encodes each chunk's wire bytes itself (no v1::Event objects).
grpc::ServerWriteReactor<grpc::ByteBuffer>* NewReadEventsCall(
    const Replayer* replayer, v1::ReadEventsRequest request, StreamCall call);

// Chunks are computed on the handler thread (and its workers) while gRPC
// sends the previous one; cancellation, a stalled client and server
// shutdown stop the computation between entities.
grpc::ServerWriteReactor<grpc::ByteBuffer>* NewSnapshotCall(
    const ViewEngine* views, v1::SnapshotRequest request, StreamCall call);

// Whether a join's first message (its view or service) may be read; may
// pin the service version it checked in the message.
using JoinCheck = std::function<absl::Status(const CallAuth& auth,
                                             v1::JoinFeaturesRequest* first)>;

// Label messages are read on the handler thread; the first names the view
// or service, which `check` must allow.
grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* NewJoinCall(
    const ViewEngine* views, JoinSession::Options options, CallAuth auth,
    JoinCheck check, StreamCall call);

// Each message is ingested (and durable) before the next is read; `auth`
// must be allowed to ingest into each message's stream.
grpc::ServerReadReactor<grpc::ByteBuffer>* NewIngestStreamCall(
    const Ingester* ingester, EventStore* store, grpc::ByteBuffer* response,
    CallAuth auth, StreamCall call);

// Calls that only report `status`.
grpc::ServerWriteReactor<grpc::ByteBuffer>* FailedWriteCall(
    grpc::Status status);
grpc::ServerReadReactor<grpc::ByteBuffer>* FailedReadCall(grpc::Status status);
grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* FailedBidiCall(
    grpc::Status status);

// "OK batches=3 accepted=… duplicates=… rejected=…": an ingest call's
// outcome for its audit line.
std::string IngestSummary(const grpc::Status& status,
                          const v1::IngestResponse& total);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_RPC_STREAM_CALLS_H_
