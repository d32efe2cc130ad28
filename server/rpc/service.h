#ifndef RAWFEAT_SERVER_RPC_SERVICE_H_
#define RAWFEAT_SERVER_RPC_SERVICE_H_

// The gRPC adapter of rawfeat.v1.FeatureStore: converts messages and status
// codes, checks cancellation, and calls the core. No business logic here.
// GetFeatures is served with gRPC's callback API: a lookup is a few tens
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

#include "rawfeat/v1/rawfeat.grpc.pb.h"
#include "server/events/ingester.h"
#include "server/events/replayer.h"
#include "server/schema/registry.h"
#include "server/storage/event_store.h"
#include "server/views/join.h"
#include "server/views/view_engine.h"

namespace rawfeat {

class FeatureStoreService final
    : public v1::FeatureStore::WithCallbackMethod_GetFeatures<
          v1::FeatureStore::WithRawCallbackMethod_ReadEvents<
              v1::FeatureStore::WithRawCallbackMethod_JoinFeatures<
                  v1::FeatureStore::Service>>> {
 public:
  // REQUIRES: every pointer outlives the service.
  FeatureStoreService(EventStore* store, Registry* registry,
                      const Ingester* ingester, const Replayer* replayer,
                      const ViewEngine* views,
                      JoinSession::Options join_options)
      : store_(store),
        registry_(registry),
        ingester_(ingester),
        replayer_(replayer),
        views_(views),
        join_options_(join_options) {}

  grpc::Status ApplyDefinitions(
      grpc::ServerContext* context, const v1::ApplyDefinitionsRequest* request,
      v1::ApplyDefinitionsResponse* response) override;
  grpc::Status ListDefinitions(grpc::ServerContext* context,
                               const v1::ListDefinitionsRequest* request,
                               v1::ListDefinitionsResponse* response) override;
  grpc::Status Ingest(grpc::ServerContext* context,
                      const v1::IngestRequest* request,
                      v1::IngestResponse* response) override;
  grpc::Status IngestStream(grpc::ServerContext* context,
                            grpc::ServerReader<v1::IngestRequest>* reader,
                            v1::IngestResponse* response) override;
  grpc::ServerUnaryReactor* GetFeatures(
      grpc::CallbackServerContext* context,
      const v1::GetFeaturesRequest* request,
      v1::GetFeaturesResponse* response) override;
  grpc::Status Snapshot(grpc::ServerContext* context,
                        const v1::SnapshotRequest* request,
                        grpc::ServerWriter<v1::SnapshotChunk>* writer) override;
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

 private:
  EventStore* const store_;
  Registry* const registry_;
  const Ingester* const ingester_;
  const Replayer* const replayer_;
  const ViewEngine* const views_;
  const JoinSession::Options join_options_;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_RPC_SERVICE_H_
