#ifndef RAWFEAT_SERVER_SCHEMA_REGISTRY_H_
#define RAWFEAT_SERVER_SCHEMA_REGISTRY_H_

// The registry of streams and feature views: validated, versioned, persisted
// in the `meta` column family. Readers get immutable snapshots
// (shared_ptr<const ...>) so a definition never changes under a request.
//
// Thread-safety: all methods are safe to call concurrently; Apply calls are
// serialized.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/schema/validation.h"
#include "server/storage/event_store.h"

namespace rawfeat {

// One stream as the ingest and read paths need it.
struct StreamSchema {
  uint32_t stream_id = 0;
  std::string name;
  // Every schema version, oldest first; def = versions.back().
  std::vector<v1::StreamDef> versions;
  const v1::StreamDef& def() const { return versions.back(); }
  uint32_t schema_version() const {
    return static_cast<uint32_t>(versions.size() - 1);
  }
  // Newest field list by position, and positions by name.
  std::vector<v1::FieldType> types;
  absl::flat_hash_map<std::string, int> position;
  // Positions ordered by field name (canonical order for content hashes).
  std::vector<int> by_name;
};

struct ApplyOutcome {
  std::vector<std::string> changes;
  // Only filled for dry runs; a real apply with problems is an error.
  std::vector<std::string> problems;
};

class Registry {
 public:
  // REQUIRES: `store` outlives the registry.
  explicit Registry(EventStore* store);

  // Loads stored definitions. A record that fails to parse or validate is
  // skipped and reported by problems(); only storage errors fail Load.
  absl::Status Load();

  // Validates and applies `defs` atomically (all or nothing). Streams are
  // added or evolved additively; views are added as (name, version), and
  // re-applying an identical one is a no-op. `source` (a file name) prefixes
  // every message.
  // Errors: INVALID_ARGUMENT (invalid definition) or FAILED_PRECONDITION
  // (incompatible change), the message listing every problem. With
  // `dry_run` nothing is written and problems come back in the outcome.
  absl::StatusOr<ApplyOutcome> Apply(const v1::Definitions& defs, bool dry_run,
                                     absl::string_view source);

  // nullptr if unknown.
  std::shared_ptr<const StreamSchema> FindStream(absl::string_view name) const;

  // `version` 0 = the highest. Errors: NOT_FOUND naming the view/version.
  absl::StatusOr<std::shared_ptr<const v1::FeatureViewDef>> FindView(
      absl::string_view name, uint32_t version) const;

  // `version` 0 = the highest. Errors: NOT_FOUND naming the service/version.
  absl::StatusOr<std::shared_ptr<const v1::FeatureServiceDef>> FindService(
      absl::string_view name, uint32_t version) const;

  std::vector<std::shared_ptr<const StreamSchema>> Streams() const;
  std::vector<std::shared_ptr<const v1::FeatureViewDef>> Views() const;
  std::vector<std::shared_ptr<const v1::FeatureServiceDef>> Services() const;

  // The output feature names of a service (see ServiceFeatureNames).
  std::vector<std::string> ServiceFeatureNames(
      const v1::FeatureServiceDef& service) const;

  // Definitions that failed to load (from meta or from schemas/ files).
  std::vector<std::string> problems() const;
  void AddProblem(std::string problem);

 private:
  using ViewKey = std::pair<std::string, uint32_t>;
  using ViewMap = std::map<ViewKey, std::shared_ptr<const v1::FeatureViewDef>>;
  using ServiceMap =
      std::map<ViewKey, std::shared_ptr<const v1::FeatureServiceDef>>;
  static FindViewFn ViewFinder(const ViewMap& views);
  static std::shared_ptr<const StreamSchema> MakeSchema(
      uint32_t id, std::vector<v1::StreamDef> versions);

  EventStore* const store_;
  absl::Mutex apply_mu_;  // serializes Apply
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const StreamSchema>> streams_
      ABSL_GUARDED_BY(mu_);
  ViewMap views_ ABSL_GUARDED_BY(mu_);
  ServiceMap services_ ABSL_GUARDED_BY(mu_);
  uint32_t next_stream_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<std::string> problems_ ABSL_GUARDED_BY(mu_);
};

// Applies every *.textproto in `dir` at start-up: first the streams of all
// files, then the views, then the services, one Apply per file and pass, so
// one broken file does not keep the others out. Each failure is recorded with
// registry->AddProblem and returned.
std::vector<std::string> ApplySchemasDir(const std::string& dir,
                                         Registry* registry);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_SCHEMA_REGISTRY_H_
