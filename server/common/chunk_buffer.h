#ifndef RAWFEAT_SERVER_COMMON_CHUNK_BUFFER_H_
#define RAWFEAT_SERVER_COMMON_CHUNK_BUFFER_H_

// A growable byte buffer for response chunks written in place. Extend()
// hands out room without writing it first (std::string::resize zero-fills
// every byte it adds: each ~200 KiB replay chunk was written twice), and
// Release() gives the bytes to a transport that frees them with std::free.
// Not thread-safe.

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/strings/string_view.h"

namespace rawfeat {

class ChunkBuffer {
 public:
  ChunkBuffer() = default;
  ChunkBuffer(const ChunkBuffer&) = delete;
  ChunkBuffer& operator=(const ChunkBuffer&) = delete;
  ~ChunkBuffer() { std::free(data_); }

  const char* data() const { return data_; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  absl::string_view view() const { return absl::string_view(data_, size_); }

  // Room for `n` bytes in all without another allocation.
  void Reserve(size_t n) {
    if (n > capacity_) Reallocate(n);
  }

  // Grows the buffer by `n` bytes and returns where they start; their
  // contents are unspecified until the caller writes them. Throws
  // std::bad_alloc as std::string would.
  char* Extend(size_t n) {
    if (capacity_ - size_ < n) {
      Reallocate(std::max(size_ + n, 2 * capacity_));
    }
    char* at = data_ + size_;
    size_ += n;
    return at;
  }

  void Append(absl::string_view bytes) {
    if (!bytes.empty()) {
      std::memcpy(Extend(bytes.size()), bytes.data(), bytes.size());
    }
  }

  // Drops the bytes from `n` on. REQUIRES: n <= size().
  void Truncate(size_t n) { size_ = n; }
  void Clear() { size_ = 0; }

  // Hands the bytes over (nullptr if none was ever allocated): the caller
  // frees them with std::free. The buffer is then empty, with no room.
  char* Release() {
    char* bytes = data_;
    data_ = nullptr;
    size_ = capacity_ = 0;
    return bytes;
  }

 private:
  void Reallocate(size_t n) {
    void* grown = std::realloc(data_, n);
    if (grown == nullptr) throw std::bad_alloc();
    data_ = static_cast<char*>(grown);
    capacity_ = n;
  }

  char* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_COMMON_CHUNK_BUFFER_H_
