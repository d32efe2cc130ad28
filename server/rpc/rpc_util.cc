#include "server/rpc/rpc_util.h"

#include <dlfcn.h>
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

bool FlattenBytes(const grpc::ByteBuffer& bytes, std::string* out) {
  out->clear();
  std::vector<grpc::Slice> slices;
  if (!bytes.Dump(&slices).ok()) return false;
  out->reserve(bytes.Length());
  for (const grpc::Slice& slice : slices) {
    out->append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return true;
}

void ReleaseFreedMemory() {
  // rawfeatd runs on jemalloc (server/CMakeLists.txt), which keeps freed
  // pages of its arenas until they decay; tests and tools in this process
  // may run on glibc's malloc.
  using MallctlFn = int (*)(const char*, void*, size_t*, void*, size_t);
  static const auto mallctl =
      reinterpret_cast<MallctlFn>(dlsym(RTLD_DEFAULT, "mallctl"));
  if (mallctl != nullptr) {
    // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena's unused dirty pages.
    mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
    return;
  }
  malloc_trim(0);
}

}  // namespace rawfeat
