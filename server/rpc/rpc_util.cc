#include "server/rpc/rpc_util.h"

#include <malloc.h>

#include <string>
#include <vector>

namespace rawfeat {

bool ParseMessage(const grpc::ByteBuffer& bytes,
                  google::protobuf::MessageLite* message) {
  std::vector<grpc::Slice> slices;
  if (!bytes.Dump(&slices).ok()) return false;
  if (slices.size() == 1) {
    return message->ParseFromArray(slices[0].begin(),
                                   static_cast<int>(slices[0].size()));
  }
  std::string joined;
  for (const auto& slice : slices) {
    joined.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return message->ParseFromString(joined);
}

void ReleaseFreedMemory() { malloc_trim(0); }

}  // namespace rawfeat
