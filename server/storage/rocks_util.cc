#include "server/storage/rocks_util.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace rawfeat {

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsNoSpace()) {
    return absl::ResourceExhaustedError(absl::StrCat("disk full: ", msg));
  }
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain() || s.IsIOError()) {
    return absl::UnavailableError(msg);
  }
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  return absl::InternalError(msg);
}

ReusedWriteBatch::ReusedWriteBatch(std::unique_ptr<rocksdb::WriteBatch>* slot,
                                   size_t reserve, size_t keep)
    : slot_(slot), keep_(keep) {
  if (*slot_ == nullptr) {
    *slot_ = std::make_unique<rocksdb::WriteBatch>(reserve);
  }
  (*slot_)->Clear();
}

ReusedWriteBatch::~ReusedWriteBatch() {
  if ((*slot_)->GetDataSize() > keep_) slot_->reset();
}

}  // namespace rawfeat
