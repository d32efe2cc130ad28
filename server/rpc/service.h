#ifndef RAWFEAT_SERVER_RPC_SERVICE_H_
#define RAWFEAT_SERVER_RPC_SERVICE_H_

// The gRPC adapter of rawfeat.v1.FeatureStore: converts messages and status
// codes, checks cancellation, and calls the core. No business logic here.
// RPCs not implemented yet answer UNIMPLEMENTED (the generated base class
// does that). Thread-safe.

#include <string>

#include "rawfeat/v1/rawfeat.grpc.pb.h"
#include "server/events/ingester.h"
#include "server/events/replayer.h"
#include "server/schema/registry.h"
#include "server/storage/event_store.h"
#include "server/views/view_engine.h"

namespace rawfeat {

class FeatureStoreService final : public v1::FeatureStore::Service {
 public:
  // REQUIRES: every pointer outlives the service.
  FeatureStoreService(EventStore* store, Registry* registry,
                      const Ingester* ingester, const Replayer* replayer,
                      const ViewEngine* views)
      : store_(store),
        registry_(registry),
        ingester_(ingester),
        replayer_(replayer),
        views_(views) {}

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
  grpc::Status GetFeatures(grpc::ServerContext* context,
                           const v1::GetFeaturesRequest* request,
                           v1::GetFeaturesResponse* response) override;
  grpc::Status ReadEvents(
      grpc::ServerContext* context, const v1::ReadEventsRequest* request,
      grpc::ServerWriter<v1::ReadEventsResponse>* writer) override;
  grpc::Status GetStatus(grpc::ServerContext* context,
                         const v1::GetStatusRequest* request,
                         v1::GetStatusResponse* response) override;

 private:
  EventStore* const store_;
  Registry* const registry_;
  const Ingester* const ingester_;
  const Replayer* const replayer_;
  const ViewEngine* const views_;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_RPC_SERVICE_H_
