#ifndef RAWFEAT_SERVER_RPC_STATUS_CONVERT_H_
#define RAWFEAT_SERVER_RPC_STATUS_CONVERT_H_

// absl::Status -> grpc::Status, at the edge only, and the one place that
// keeps every status a client receives intact: messages are bounded (they
// travel in trailers, which clients cap at 8 KiB by default), and requests
// gRPC could not parse are INVALID_ARGUMENT with a reason instead of its
// bare INTERNAL. Thread-safe.

#include <memory>

#include "absl/status/status.h"
#include "grpcpp/support/server_interceptor.h"
#include "grpcpp/support/status.h"

namespace rawfeat {

// Longest status message sent, in bytes; longer ones are cut (at a UTF-8
// boundary) and say how long they were.
inline constexpr size_t kMaxStatusMessageBytes = 4096;

grpc::Status ToGrpcStatus(const absl::Status& status);

// `status` with its message bounded as above.
grpc::Status BoundedStatus(const grpc::Status& status);

// For the sync methods, where gRPC itself parses the request: maps its
// parse failure (INTERNAL with an empty message) to INVALID_ARGUMENT with a
// reason, and bounds every message.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewStatusInterceptorFactory();

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_RPC_STATUS_CONVERT_H_
