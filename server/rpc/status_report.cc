#include "server/rpc/status_report.h"

#include <utility>

#include "server/common/time_util.h"

namespace rawfeat {

void FillStatus(EventStore* store, Registry* registry, const Authorizer* auth,
                v1::GetStatusResponse* response) {
  if (auth != nullptr) response->set_auth_problem(auth->problem());
  response->set_version(RAWFEAT_VERSION);
  response->set_watermark(store->watermark());
  const auto counts = store->StreamCounts();
  for (const auto& s : registry->Streams()) {
    v1::StreamStatus* st = response->add_streams();
    st->set_name(s->name);
    auto it = counts.find(s->stream_id);
    st->set_events(it == counts.end() ? 0 : it->second);
    st->set_retention(s->def().retention());
    const int64_t horizon = store->Horizon(s->stream_id);
    if (horizon != kNoHorizon) {
      *st->mutable_horizon() = MicrosToTimestamp(horizon);
    }
  }
  response->set_disk_bytes(store->DiskBytes());
  for (auto& p : registry->problems()) {
    response->add_definition_problems(std::move(p));
  }
  response->set_data_dir(store->dir());
  response->set_sync(store->sync());
  response->set_tiles(store->TileCount());
  response->set_compacting(store->Compacting());
  response->set_unsealed_events(store->UnsealedEvents());
  response->set_write_error(store->WriteError());
  response->set_disk_free_bytes(store->DiskFreeBytes());
  for (const DataLoss& loss : store->DataLosses()) {
    v1::DataLoss* out = response->add_data_losses();
    out->set_first_seq(loss.first_seq);
    out->set_last_seq(loss.last_seq);
    *out->mutable_accepted_at() = MicrosToTimestamp(loss.accepted_at_us);
    out->set_detail(loss.detail);
  }
}

}  // namespace rawfeat
