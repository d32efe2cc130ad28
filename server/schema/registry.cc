#include "server/schema/registry.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/message_differencer.h"
#include "rawfeat/internal/meta.pb.h"
#include "server/common/coding.h"
#include "server/common/definitions_text.h"
#include "server/common/echo.h"
#include "server/schema/validation.h"

namespace rawfeat {

Registry::Registry(EventStore* store) : store_(store) {}

std::shared_ptr<const StreamSchema> Registry::MakeSchema(
    uint32_t id, std::vector<v1::StreamDef> versions) {
  auto s = std::make_shared<StreamSchema>();
  s->stream_id = id;
  s->name = versions.back().name();
  s->versions = std::move(versions);
  const v1::StreamDef& def = s->def();
  for (int i = 0; i < def.fields_size(); ++i) {
    s->types.push_back(def.fields(i).type());
    s->position[def.fields(i).name()] = i;
    s->by_name.push_back(i);
  }
  std::sort(s->by_name.begin(), s->by_name.end(), [&def](int a, int b) {
    return def.fields(a).name() < def.fields(b).name();
  });
  return s;
}

absl::Status Registry::Load() {
  std::vector<std::string> problems;
  std::map<std::string, std::shared_ptr<const StreamSchema>> streams;
  std::map<ViewKey, std::shared_ptr<const v1::FeatureViewDef>> views;
  uint32_t max_id = 0;
  absl::Status s = store_->ScanDefinitions(
      EventStore::DefinitionKind::kStream,
      [&](absl::string_view key, absl::string_view value) {
        internal::StoredStream stored;
        if (!stored.ParseFromArray(value.data(),
                                   static_cast<int>(value.size())) ||
            stored.versions().empty() || stored.stream_id() == 0) {
          problems.push_back(absl::StrCat("stored definition '", key,
                                          "': corrupt record, skipped"));
          return;
        }
        max_id = std::max(max_id, stored.stream_id());
        const auto invalid = ValidateStream(stored.versions().rbegin()[0]);
        if (!invalid.empty()) {
          problems.push_back(absl::StrCat("stored definition '", key,
                                          "': ", absl::StrJoin(invalid, "; ")));
          return;
        }
        std::vector<v1::StreamDef> versions(stored.versions().begin(),
                                            stored.versions().end());
        auto schema = MakeSchema(stored.stream_id(), std::move(versions));
        auto retention = ParseRetention(schema->def().retention());
        store_->LoadRetention(schema->stream_id,
                              retention.ok() ? *retention : 0);
        streams[schema->name] = schema;
      });
  if (!s.ok()) return s;
  // Ids of counters too, so a stream whose record is corrupt never has its
  // id reused by another stream.
  auto counted = store_->HighestCountedStreamId();
  if (!counted.ok()) return counted.status();
  max_id = std::max(max_id, *counted);
  s = store_->ScanDefinitions(
      EventStore::DefinitionKind::kView,
      [&](absl::string_view key, absl::string_view value) {
        auto view = std::make_shared<v1::FeatureViewDef>();
        if (!view->ParseFromArray(value.data(),
                                  static_cast<int>(value.size()))) {
          problems.push_back(absl::StrCat("stored definition '", key,
                                          "': corrupt record, skipped"));
          return;
        }
        auto it = streams.find(view->stream());
        if (it == streams.end()) {
          problems.push_back(absl::StrCat(
              "stored view '", view->name(), "' version ", view->version(),
              ": stream '", view->stream(), "' is not loaded, skipped"));
          return;
        }
        const auto invalid = ValidateView(*view, it->second->def());
        if (!invalid.empty()) {
          problems.push_back(
              absl::StrCat("stored ", absl::StrJoin(invalid, "; ")));
          return;
        }
        views[{view->name(), view->version()}] = view;
      });
  if (!s.ok()) return s;
  ServiceMap services;
  s = store_->ScanDefinitions(
      EventStore::DefinitionKind::kService,
      [&](absl::string_view key, absl::string_view value) {
        auto service = std::make_shared<v1::FeatureServiceDef>();
        if (!service->ParseFromArray(value.data(),
                                     static_cast<int>(value.size()))) {
          problems.push_back(absl::StrCat("stored definition '", key,
                                          "': corrupt record, skipped"));
          return;
        }
        const auto invalid = ValidateService(*service, ViewFinder(views));
        if (!invalid.empty()) {
          problems.push_back(
              absl::StrCat("stored ", absl::StrJoin(invalid, "; ")));
          return;
        }
        services[{service->name(), service->version()}] = service;
      });
  if (!s.ok()) return s;
  absl::MutexLock l(&mu_);
  streams_ = std::move(streams);
  views_ = std::move(views);
  services_ = std::move(services);
  next_stream_id_ = max_id + 1;
  for (auto& p : problems) problems_.push_back(std::move(p));
  return absl::OkStatus();
}

namespace {

// Whether `def` is a new (name, version) of `defs`. An identical one is a
// no-op (false); a different one under the same key is a problem (false,
// *incompatible set): (name, version) is immutable.
template <typename Map, typename Def>
bool IsNew(const Map& defs, const typename Map::key_type& key, const Def& def,
           const char* kind, std::vector<std::string>* problems,
           bool* incompatible) {
  auto it = defs.find(key);
  if (it == defs.end()) return true;
  if (google::protobuf::util::MessageDifferencer::Equals(*it->second, def)) {
    return false;
  }
  *incompatible = true;
  problems->push_back(absl::StrCat(
      kind, " '", key.first, "' version ", key.second,
      ": already exists with a different definition; (name, version) is "
      "immutable, publish the change as a new version"));
  return false;
}

}  // namespace

absl::StatusOr<ApplyOutcome> Registry::Apply(const v1::Definitions& defs,
                                             bool dry_run,
                                             absl::string_view source) {
  absl::MutexLock apply_lock(&apply_mu_);
  ApplyOutcome out;
  std::vector<std::string> problems;
  bool incompatible = false;
  const std::string prefix = source.empty() ? "" : absl::StrCat(source, ": ");

  std::map<std::string, std::shared_ptr<const StreamSchema>> streams;
  ViewMap views;
  ServiceMap services;
  uint32_t next_id;
  {
    absl::MutexLock l(&mu_);
    streams = streams_;
    views = views_;
    services = services_;
    next_id = next_stream_id_;
  }
  std::vector<EventStore::Definition> writes;
  // Streams whose retention is set or changes: id -> microseconds.
  std::vector<std::pair<uint32_t, int64_t>> retention;

  std::map<std::string, int> seen_streams;
  for (const auto& def : defs.streams()) {
    if (seen_streams[def.name()]++ == 1) {
      problems.push_back(absl::StrCat("stream '", def.name(),
                                      "': defined twice in one apply"));
      continue;
    }
    auto invalid = ValidateStream(def);
    if (!invalid.empty()) {
      problems.insert(problems.end(), invalid.begin(), invalid.end());
      continue;
    }
    std::vector<v1::StreamDef> versions;
    uint32_t id;
    auto it = streams.find(def.name());
    if (it == streams.end()) {
      id = next_id++;
      versions.push_back(def);
      if (!def.retention().empty()) {
        retention.emplace_back(id, *ParseRetention(def.retention()));
      }
      out.changes.push_back(absl::StrCat("add stream '", def.name(), "' (",
                                         def.fields_size(), " fields)"));
    } else {
      auto ev = EvolveStream(it->second->def(), def);
      if (!ev.ok()) {
        incompatible = true;
        problems.push_back(std::string(ev.status().message()));
        continue;
      }
      if (!ev->changed) continue;
      id = it->second->stream_id;
      versions = it->second->versions;
      if (ev->retention_changed) {
        retention.emplace_back(id, *ParseRetention(def.retention()));
      }
      if (ev->new_schema_version) {
        versions.push_back(ev->merged);
      } else {
        versions.back() = ev->merged;  // descriptions only
      }
      out.changes.insert(out.changes.end(), ev->changes.begin(),
                         ev->changes.end());
    }
    internal::StoredStream stored;
    stored.set_stream_id(id);
    for (const auto& v : versions) *stored.add_versions() = v;
    writes.push_back({EventStore::DefinitionKind::kStream, def.name(), 0,
                      stored.SerializeAsString()});
    streams[def.name()] = MakeSchema(id, std::move(versions));
  }

  for (const auto& view : defs.views()) {
    auto sit = streams.find(view.stream());
    if (sit == streams.end()) {
      problems.push_back(absl::StrCat("view '", view.name(), "' version ",
                                      view.version(), ": stream '",
                                      view.stream(), "' is not defined"));
      continue;
    }
    auto invalid = ValidateView(view, sit->second->def());
    if (invalid.empty() && views.count({view.name(), view.version()}) == 0) {
      invalid = ViewRetentionProblems(view, sit->second->def());
    }
    if (!invalid.empty()) {
      problems.insert(problems.end(), invalid.begin(), invalid.end());
      continue;
    }
    const ViewKey key{view.name(), view.version()};
    if (!IsNew(views, key, view, "view", &problems, &incompatible)) continue;
    out.changes.push_back(absl::StrCat("add view '", view.name(), "' version ",
                                       view.version(), " (",
                                       view.features_size(), " features)"));
    writes.push_back({EventStore::DefinitionKind::kView, view.name(),
                      view.version(), view.SerializeAsString()});
    views[key] = std::make_shared<v1::FeatureViewDef>(view);
  }

  for (const auto& service : defs.services()) {
    auto invalid = ValidateService(service, ViewFinder(views));
    if (!invalid.empty()) {
      problems.insert(problems.end(), invalid.begin(), invalid.end());
      continue;
    }
    const ViewKey key{service.name(), service.version()};
    if (!IsNew(services, key, service, "service", &problems, &incompatible)) {
      continue;
    }
    out.changes.push_back(absl::StrCat(
        "add service '", service.name(), "' version ", service.version(), " (",
        service.parts_size(), " parts, ",
        ::rawfeat::ServiceFeatureNames(service, ViewFinder(views)).size(),
        " features)"));
    writes.push_back({EventStore::DefinitionKind::kService, service.name(),
                      service.version(), service.SerializeAsString()});
    services[key] = std::make_shared<v1::FeatureServiceDef>(service);
  }

  for (auto& p : problems) p = absl::StrCat(prefix, p);
  if (dry_run) {
    out.problems = std::move(problems);
    return out;
  }
  if (!problems.empty()) {
    const std::string msg = absl::StrJoin(problems, "; ");
    return incompatible ? absl::FailedPreconditionError(msg)
                        : absl::InvalidArgumentError(msg);
  }
  if (!writes.empty()) {
    absl::Status s = store_->PutDefinitions(writes, retention);
    if (!s.ok()) return s;
  }
  absl::MutexLock l(&mu_);
  streams_ = std::move(streams);
  views_ = std::move(views);
  services_ = std::move(services);
  next_stream_id_ = next_id;
  return out;
}

FindViewFn Registry::ViewFinder(const ViewMap& views) {
  return [&views](const std::string& name,
                  uint32_t version) -> const v1::FeatureViewDef* {
    auto it = views.find({name, version});
    return it == views.end() ? nullptr : it->second.get();
  };
}

absl::StatusOr<std::shared_ptr<const v1::FeatureServiceDef>>
Registry::FindService(absl::string_view name, uint32_t version) const {
  absl::MutexLock l(&mu_);
  std::shared_ptr<const v1::FeatureServiceDef> found;
  for (const auto& [key, service] : services_) {
    if (key.first != name) continue;
    if (version == 0 || key.second == version) found = service;
  }
  if (found == nullptr) {
    return absl::NotFoundError(
        version == 0 ? absl::StrCat("service '", Echo(name), "' is not defined")
                     : absl::StrCat("service '", Echo(name), "' version ",
                                    version, " is not defined"));
  }
  return found;
}

std::vector<std::shared_ptr<const v1::FeatureServiceDef>> Registry::Services()
    const {
  absl::MutexLock l(&mu_);
  std::vector<std::shared_ptr<const v1::FeatureServiceDef>> out;
  for (const auto& [key, service] : services_) out.push_back(service);
  return out;
}

std::vector<std::string> Registry::ServiceFeatureNames(
    const v1::FeatureServiceDef& service) const {
  absl::MutexLock l(&mu_);
  return ::rawfeat::ServiceFeatureNames(service, ViewFinder(views_));
}

std::shared_ptr<const StreamSchema> Registry::FindStream(
    absl::string_view name) const {
  absl::MutexLock l(&mu_);
  auto it = streams_.find(std::string(name));
  return it == streams_.end() ? nullptr : it->second;
}

absl::StatusOr<std::shared_ptr<const v1::FeatureViewDef>> Registry::FindView(
    absl::string_view name, uint32_t version) const {
  absl::MutexLock l(&mu_);
  if (version == 0) {
    // The highest version: the last key with this name.
    auto it = views_.lower_bound({std::string(name), UINT32_MAX});
    if (it != views_.end() && it->first.first == name) return it->second;
    if (it != views_.begin()) {
      --it;
      if (it->first.first == name) return it->second;
    }
    return absl::NotFoundError(
        absl::StrCat("view '", Echo(name), "' not found"));
  }
  auto it = views_.find({std::string(name), version});
  if (it == views_.end()) {
    return absl::NotFoundError(absl::StrCat("view '", Echo(name), "' version ",
                                            version, " not found"));
  }
  return it->second;
}

std::vector<std::shared_ptr<const StreamSchema>> Registry::Streams() const {
  absl::MutexLock l(&mu_);
  std::vector<std::shared_ptr<const StreamSchema>> out;
  for (const auto& [name, s] : streams_) out.push_back(s);
  return out;
}

std::vector<std::shared_ptr<const v1::FeatureViewDef>> Registry::Views() const {
  absl::MutexLock l(&mu_);
  std::vector<std::shared_ptr<const v1::FeatureViewDef>> out;
  for (const auto& [key, v] : views_) out.push_back(v);
  return out;
}

std::vector<std::string> Registry::problems() const {
  absl::MutexLock l(&mu_);
  return problems_;
}

void Registry::AddProblem(std::string problem) {
  absl::MutexLock l(&mu_);
  problems_.push_back(std::move(problem));
}

std::vector<std::string> ApplySchemasDir(const std::string& dir,
                                         Registry* registry) {
  std::vector<std::string> problems;
  auto report = [&](std::string p) {
    problems.push_back(p);
    registry->AddProblem(std::move(p));
  };
  auto files = ListDefinitionFiles(dir);
  if (!files.ok()) {
    report(std::string(files.status().message()));
    return problems;
  }
  std::vector<std::pair<std::string, v1::Definitions>> parsed;
  for (const auto& file : *files) {
    auto defs = ReadDefinitionsFile(file);
    if (!defs.ok()) {
      report(std::string(defs.status().message()));
      continue;
    }
    parsed.emplace_back(file, std::move(*defs));
  }
  for (int pass = 0; pass < 3; ++pass) {
    for (const auto& [file, defs] : parsed) {
      v1::Definitions part;
      if (pass == 0) {
        *part.mutable_streams() = defs.streams();
      } else if (pass == 1) {
        *part.mutable_views() = defs.views();
      } else {
        *part.mutable_services() = defs.services();
      }
      if (part.streams().empty() && part.views().empty() &&
          part.services().empty()) {
        continue;
      }
      auto applied = registry->Apply(part, /*dry_run=*/false, file);
      if (!applied.ok()) report(std::string(applied.status().message()));
    }
  }
  return problems;
}

}  // namespace rawfeat
