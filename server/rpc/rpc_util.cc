#include "server/rpc/rpc_util.h"

#include <malloc.h>

#include <string>
#include <vector>

#include "grpcpp/support/proto_buffer_reader.h"

namespace rawfeat {

bool ParseMessage(const grpc::ByteBuffer& bytes,
                  google::protobuf::MessageLite* message) {
  std::vector<grpc::Slice> slices;
  if (!bytes.Dump(&slices).ok()) return false;
  if (slices.size() == 1) {
    return message->ParseFromArray(slices[0].begin(),
                                   static_cast<int>(slices[0].size()));
  }
  // A big message arrives in many slices: parsed across them, not joined
  // into one copy first. (The reader takes a mutable buffer; the copy
  // shares the slices.)
  grpc::ByteBuffer shared(bytes);
  grpc::ProtoBufferReader reader(&shared);
  return message->ParseFromZeroCopyStream(&reader) && reader.status().ok();
}

void ReleaseFreedMemory() { malloc_trim(0); }

}  // namespace rawfeat
