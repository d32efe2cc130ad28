#ifndef RAWFEAT_SERVER_COMMON_STACK_ARENA_H_
#define RAWFEAT_SERVER_COMMON_STACK_ARENA_H_

// A protobuf Arena whose first block is this object's own storage, for one
// call's request and answer: an answer of many rows is hundreds of small
// messages, allocated one by one and freed at once, and a small one never
// reaches the heap. Declare it on the stack; not thread-safe beyond what
// google::protobuf::Arena promises.

#include <cstddef>

#include "google/protobuf/arena.h"

namespace rawfeat {

template <size_t kFirstBlockBytes>
class StackArena {
 public:
  StackArena() : arena_(Options(first_block_)) {}
  StackArena(const StackArena&) = delete;
  StackArena& operator=(const StackArena&) = delete;

  google::protobuf::Arena* get() { return &arena_; }

 private:
  static google::protobuf::ArenaOptions Options(char* block) {
    google::protobuf::ArenaOptions options;
    options.initial_block = block;
    options.initial_block_size = kFirstBlockBytes;
    return options;
  }

  alignas(8) char first_block_[kFirstBlockBytes];
  google::protobuf::Arena arena_;  // after first_block_: made from it
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_COMMON_STACK_ARENA_H_
