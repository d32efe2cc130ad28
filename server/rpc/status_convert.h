#ifndef RAWFEAT_SERVER_RPC_STATUS_CONVERT_H_
#define RAWFEAT_SERVER_RPC_STATUS_CONVERT_H_

// absl::Status -> grpc::Status, at the edge only. Thread-safe.

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace rawfeat {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_RPC_STATUS_CONVERT_H_
