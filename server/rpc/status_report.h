#ifndef RAWFEAT_SERVER_RPC_STATUS_REPORT_H_
#define RAWFEAT_SERVER_RPC_STATUS_REPORT_H_

// GetStatus's answer, assembled from the store, the registry and the auth
// file's state. Thread-safe.

#include "rawfeat/v1/rawfeat.pb.h"
#include "server/rpc/auth.h"
#include "server/schema/registry.h"
#include "server/storage/event_store.h"

namespace rawfeat {

// `auth` may be null (no --auth_file).
void FillStatus(EventStore* store, Registry* registry, const Authorizer* auth,
                v1::GetStatusResponse* response);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_RPC_STATUS_REPORT_H_
