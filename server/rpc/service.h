#ifndef RAWFEAT_SERVER_RPC_SERVICE_H_
#define RAWFEAT_SERVER_RPC_SERVICE_H_

// The gRPC adapter of rawfeat.v1.FeatureStore: authenticates and
// authorizes each call (rpc/auth.h), admits streaming calls under their
// caps (rpc/call_limits.h), converts messages and status codes, and calls
// the core. No business logic here; the streaming reactors live in
// rpc/stream_calls.h.
// GetFeatures is served with gRPC's (raw) callback API: a lookup is a few tens
// of microseconds of CPU-bound reads, and running it on the thread that
// received it saves the sync server's hand-off to a worker thread (the
// largest part of a small lookup's latency). The one wait it can have is a
// tile build taking the commit lock behind one group commit. ReadEvents
// and JoinFeatures are raw callback methods: a handler thread per call
// writes the responses' wire bytes itself (straight from storage, or from
// the join's encoded rows) while gRPC sends the previous one. Everything
// else is sync.
// Thread-safe.

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rawfeat/v1/rawfeat.grpc.pb.h"
#include "server/events/ingester.h"
#include "server/events/replayer.h"
#include "server/rpc/auth.h"
#include "server/rpc/call_limits.h"
#include "server/schema/registry.h"
#include "server/storage/event_store.h"
#include "server/views/join.h"
#include "server/views/view_engine.h"

namespace rawfeat {

class Metrics;

class FeatureStoreService final
    : public v1::FeatureStore::WithRawCallbackMethod_GetFeatures<
          v1::FeatureStore::WithRawCallbackMethod_ReadEvents<
              v1::FeatureStore::WithRawCallbackMethod_JoinFeatures<
                  v1::FeatureStore::WithRawCallbackMethod_Snapshot<
                      v1::FeatureStore::WithRawCallbackMethod_IngestStream<
                          v1::FeatureStore::Service>>>>> {
 public:
  // REQUIRES: every pointer outlives the service.
  FeatureStoreService(EventStore* store, Registry* registry,
                      const Ingester* ingester, const Replayer* replayer,
                      const ViewEngine* views,
                      JoinSession::Options join_options,
                      StreamLimits limits = StreamLimits(),
                      const Authorizer* auth = nullptr,
                      Metrics* metrics = nullptr)
      : store_(store),
        registry_(registry),
        ingester_(ingester),
        replayer_(replayer),
        views_(views),
        join_options_(join_options),
        limits_(limits),
        read_events_slots_("ReadEvents", "--max_read_events",
                           limits.max_read_events),
        snapshot_slots_("Snapshot", "--max_snapshots", limits.max_snapshots),
        join_slots_("JoinFeatures", "--max_joins", limits.max_joins),
        ingest_stream_slots_("IngestStream", "--max_ingest_streams",
                             limits.max_ingest_streams),
        principal_calls_(limits.max_calls_per_principal),
        auth_(auth),
        metrics_(metrics) {}

  grpc::Status ApplyDefinitions(
      grpc::ServerContext* context, const v1::ApplyDefinitionsRequest* request,
      v1::ApplyDefinitionsResponse* response) override;
  grpc::Status ListDefinitions(grpc::ServerContext* context,
                               const v1::ListDefinitionsRequest* request,
                               v1::ListDefinitionsResponse* response) override;
  grpc::Status Ingest(grpc::ServerContext* context,
                      const v1::IngestRequest* request,
                      v1::IngestResponse* response) override;
  // Raw: each message is parsed here, so one that does not parse ends the
  // call with its batch index instead of looking like the end of input.
  grpc::ServerReadReactor<grpc::ByteBuffer>* IngestStream(
      grpc::CallbackServerContext* context,
      grpc::ByteBuffer* response) override;
  // Raw: the request is parsed here (a bad one is INVALID_ARGUMENT with a
  // reason) and the response serialized here.
  grpc::ServerUnaryReactor* GetFeatures(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  // Raw: chunks are serialized on the handler thread.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Snapshot(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;
  // Raw: the join session writes each response's wire bytes itself.
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* JoinFeatures(
      grpc::CallbackServerContext* context) override;
  // Raw: the replay writes each response's wire bytes itself.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* ReadEvents(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;
  grpc::Status GetStatus(grpc::ServerContext* context,
                         const v1::GetStatusRequest* request,
                         v1::GetStatusResponse* response) override;
  grpc::Status Backup(grpc::ServerContext* context,
                      const v1::BackupRequest* request,
                      v1::BackupResponse* response) override;
  grpc::Status Erase(grpc::ServerContext* context,
                     const v1::EraseRequest* request,
                     v1::EraseResponse* response) override;
  grpc::Status ListErasures(grpc::ServerContext* context,
                            const v1::ListErasuresRequest* request,
                            v1::ListErasuresResponse* response) override;

 private:
  EventStore* const store_;
  Registry* const registry_;
  const Ingester* const ingester_;
  const Replayer* const replayer_;
  const ViewEngine* const views_;
  const JoinSession::Options join_options_;
  const StreamLimits limits_;
  CallSlots read_events_slots_;
  CallSlots snapshot_slots_;
  CallSlots join_slots_;
  CallSlots ingest_stream_slots_;
  PrincipalCalls principal_calls_;
  const Authorizer* const auth_;  // nullptr: no --auth_file, all allowed
  Metrics* const metrics_;        // nullptr: no --metrics_listen
  const absl::Time started_ = absl::Now();

  // Who the call is (everything allowed when auth is off). Errors:
  // UNAUTHENTICATED. `method` must be a string literal.
  absl::StatusOr<CallAuth> Authenticate(const grpc::ServerContextBase& context,
                                        const char* method) const;
  // read_features on the request's view, or on its service and every view
  // the service reads. For a service, the request's service_version (0 =
  // latest) is set to the version checked, so the read uses exactly the
  // views that were checked even if a newer version is applied meanwhile.
  // `Request` is GetFeatures, Snapshot or JoinFeatures' request.
  template <typename Request>
  absl::Status RequireReadFeatures(const CallAuth& auth,
                                   Request* request) const {
    uint32_t version = request->service_version();
    absl::Status s = RequireReadFeatures(auth, request->view(),
                                         request->service(), &version);
    request->set_service_version(version);
    return s;
  }
  absl::Status RequireReadFeatures(const CallAuth& auth,
                                   const std::string& view,
                                   const std::string& service,
                                   uint32_t* service_version) const;
  // A streaming call's slots: its method's and its principal's.
  absl::StatusOr<CallLease> Admit(CallSlots* slots, const CallAuth& auth) {
    return CallLease::Admit(slots, &principal_calls_, auth);
  }
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_RPC_SERVICE_H_
