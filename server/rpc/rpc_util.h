#ifndef RAWFEAT_SERVER_RPC_RPC_UTIL_H_
#define RAWFEAT_SERVER_RPC_RPC_UTIL_H_

// Small helpers of the raw (ByteBuffer) RPC handlers. Thread-safe.

#include <cstddef>
#include <string>

#include "google/protobuf/message_lite.h"
#include "grpcpp/support/byte_buffer.h"

namespace rawfeat {

// Parses a request message from its raw bytes; false if it does not parse.
bool ParseMessage(const grpc::ByteBuffer& bytes,
                  google::protobuf::MessageLite* message);

// Copies the raw bytes of a message into `*out` (replacing what it held;
// its capacity is reused). False if the buffer cannot be read.
bool FlattenBytes(const grpc::ByteBuffer& bytes, std::string* out);

// Snapshots and joins allocate and free hundreds of MB from several
// threads' malloc arenas, and the allocator (jemalloc in rawfeatd, glibc's
// elsewhere) keeps freed pages mapped. Handing them
// back when such a call ends keeps the server's RSS close to what it holds
// (measured: 585 -> 367 MiB after a 1M-label join). A few ms.
void ReleaseFreedMemory();

// Responses above this many bytes are followed by ReleaseFreedMemory.
inline constexpr size_t kLargeResponseBytes = 16 << 20;

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_RPC_RPC_UTIL_H_
