// Issue 13, transport: TLS and mutual TLS on rawfeatd's port, the client's
// TLS options, and the refusal to serve a non-loopback address in plain
// text. Certificates are made by the openssl CLI in a private temp dir.

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/common/hash.h"
#include "server/rpc/auth.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "rawfeat/v1/rawfeat.grpc.pb.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// Redirects this process's stderr (the server's log) into a file while it
// lives; Text() reads what was logged so far.
class StderrFile {
 public:
  explicit StderrFile(std::string path) : path_(std::move(path)) {
    std::fflush(stderr);
    saved_ = ::dup(2);
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, 2);
    ::close(fd);
  }
  ~StderrFile() {
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
  }
  std::string Text() const { return Slurp(path_); }

 private:
  const std::string path_;
  int saved_;
};

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string d = dir_.path();
    // A CA, a server certificate for 127.0.0.1/localhost, a client
    // certificate, and an unrelated CA.
    const std::string script = absl::StrCat(
        "set -e; cd '", d, "'; ",
        "printf 'subjectAltName = IP:127.0.0.1, DNS:localhost\\n' > ext.cnf; ",
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem "
        "-days 2 -subj '/CN=rawfeat test CA'; ",
        "openssl req -newkey rsa:2048 -nodes -keyout server.key -out "
        "server.csr -subj '/CN=localhost'; ",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out server.pem -days 2 -extfile ext.cnf; ",
        "openssl req -newkey rsa:2048 -nodes -keyout client.key -out "
        "client.csr -subj '/CN=client'; ",
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out client.pem -days 2; ",
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out "
        "other.pem -days 2 -subj '/CN=other CA'");
    ASSERT_EQ(
        std::system(absl::StrCat("(", script, ") >/dev/null 2>&1").c_str()), 0)
        << "openssl failed";
  }

  std::string File(const char* name) const { return dir_.Sub(name); }

  std::unique_ptr<Server> Start(bool mutual) {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.data_dir = dir_.Sub("data");
    options.tls.cert_file = File("server.pem");
    options.tls.key_file = File("server.key");
    if (mutual) options.tls.client_ca_file = File("ca.pem");
    auto server = Server::Start(options);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : nullptr;
  }

  ClientOptions Tls(const char* ca, bool with_cert) const {
    ClientOptions options;
    options.timeout = std::chrono::seconds(10);
    options.tls = true;
    options.tls_root_pem = Slurp(File(ca));
    if (with_cert) {
      options.tls_cert_pem = Slurp(File("client.pem"));
      options.tls_key_pem = Slurp(File("client.key"));
    }
    return options;
  }

  testing::TempDir dir_;
};

TEST_F(TlsTest, ServerTlsAcceptsClientsThatTrustItsCa) {
  auto server = Start(/*mutual=*/false);
  ASSERT_NE(server, nullptr);
  Client trusting(server->address(), Tls("ca.pem", false));
  EXPECT_TRUE(trusting.GetStatus().ok()) << trusting.GetStatus().status();

  ClientOptions by_name = Tls("ca.pem", false);
  by_name.tls_server_name = "localhost";
  Client named(server->address(), by_name);
  EXPECT_TRUE(named.GetStatus().ok()) << named.GetStatus().status();

  Client wrong_ca(server->address(), Tls("other.pem", false));
  auto s = wrong_ca.GetStatus().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(s.message(), "not signed by the CA")) << s;

  ClientOptions plain_options;
  plain_options.timeout = std::chrono::seconds(10);
  Client plain(server->address(), plain_options);
  s = plain.GetStatus().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(s.message(), "may require TLS")) << s;
}

TEST_F(TlsTest, MutualTlsRequiresAClientCertificate) {
  auto server = Start(/*mutual=*/true);
  ASSERT_NE(server, nullptr);
  Client with_cert(server->address(), Tls("ca.pem", true));
  EXPECT_TRUE(with_cert.GetStatus().ok()) << with_cert.GetStatus().status();

  Client without_cert(server->address(), Tls("ca.pem", false));
  auto s = without_cert.GetStatus().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(s.message(), "client certificate")) << s;
}

TEST_F(TlsTest, NonLoopbackWithoutMutualTlsIsRefused) {
  ServerOptions options;
  options.data_dir = dir_.Sub("data");
  options.listen = "0.0.0.0:0";
  auto plain = Server::Start(options);
  EXPECT_EQ(plain.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(plain.status().message(), "--insecure_listen"))
      << plain.status();
  options.tls.cert_file = File("server.pem");
  options.tls.key_file = File("server.key");
  auto one_way = Server::Start(options);
  EXPECT_EQ(one_way.status().code(), absl::StatusCode::kFailedPrecondition)
      << one_way.status();
  options.tls.key_file = File("missing.key");
  auto missing = Server::Start(options);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "--tls_key"))
      << missing.status();
}

// Issue 13, tokens: deny by default, roles, reload keeping the previous
// principals when the file is broken.
class AuthTest : public ::testing::Test {
 protected:
  static std::string Hash(const std::string& token) {
    const Sha256Digest d = Sha256(token);
    return HexEncode(
        absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
  }

  void WriteAuth(const std::string& text) {
    const std::string path = dir_.Sub("auth.textproto");
    std::ofstream(path) << text;
    std::filesystem::permissions(path, std::filesystem::perms::owner_read |
                                           std::filesystem::perms::owner_write);
  }

  std::string Principals(bool with_reader) {
    std::string text =
        absl::StrCat("principals { name: \"ops\" token_sha256: \"",
                     Hash("admin-token"), "\" role: \"admin\" }\n",
                     "principals { name: \"pipeline\" token_sha256: \"",
                     Hash("writer-token"), "\" role: \"writer\" }\n");
    if (with_reader) {
      absl::StrAppend(&text, "principals { name: \"analyst\" token_sha256: \"",
                      Hash("reader-token"), "\" role: \"reader\" }\n");
    }
    return text;
  }

  ServerOptions WithAuth() const {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.data_dir = dir_.Sub("data");
    options.auth_file = dir_.Sub("auth.textproto");
    return options;
  }

  Client As(const Server& server, const std::string& token) {
    ClientOptions options;
    options.timeout = std::chrono::seconds(10);
    options.token = token;
    return Client(server.address(), options);
  }

  testing::TempDir dir_;
};

TEST_F(AuthTest, TokensAndRolesDenyByDefault) {
  WriteAuth(Principals(true));
  auto server = Server::Start(WithAuth());
  ASSERT_TRUE(server.ok()) << server.status();

  v1::ApplyDefinitionsRequest apply;
  *apply.mutable_definitions() = testing::OrdersDefinitions();
  v1::IngestRequest ingest;
  ingest.set_stream("orders");
  *ingest.add_events() = testing::Order("a1", "u", 1795478400LL * 1000000, 1);

  EXPECT_EQ(As(**server, "").GetStatus().status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(As(**server, "wrong").GetStatus().status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(
      As(**server, "writer-token").ApplyDefinitions(apply).status().code(),
      absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(As(**server, "admin-token").ApplyDefinitions(apply).ok());
  EXPECT_EQ(As(**server, "reader-token").Ingest(ingest).status().code(),
            absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(As(**server, "writer-token").Ingest(ingest).ok());
  EXPECT_TRUE(As(**server, "reader-token").GetStatus().ok());
  v1::ReadEventsRequest read;
  read.set_stream("orders");
  int events = 0;
  EXPECT_TRUE(As(**server, "reader-token")
                  .ReadEvents(read,
                              [&](const v1::ReadEventsResponse& r) {
                                events += r.events_size();
                                return true;
                              })
                  .ok());
  EXPECT_EQ(events, 1);
  EXPECT_EQ(
      As(**server, "")
          .ReadEvents(read, [](const v1::ReadEventsResponse&) { return true; })
          .code(),
      absl::StatusCode::kUnauthenticated);
  // Erasure is the admin's; the log records who erased.
  EXPECT_EQ(As(**server, "writer-token").Erase("orders", "u").status().code(),
            absl::StatusCode::kPermissionDenied);
  auto erased = As(**server, "admin-token").Erase("orders", "u");
  ASSERT_TRUE(erased.ok()) << erased.status();
  EXPECT_EQ(erased->events(), 1u);
  auto log = As(**server, "reader-token").ListErasures();
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->erasures_size(), 1);
  EXPECT_EQ(log->erasures(0).principal(), "ops");

  // A reload drops the reader; a broken file keeps what is in force.
  WriteAuth(Principals(false));
  ASSERT_TRUE((*server)->ReloadAuth().ok());
  EXPECT_EQ(As(**server, "reader-token").GetStatus().status().code(),
            absl::StatusCode::kUnauthenticated);
  WriteAuth("principals { name: ");
  EXPECT_FALSE((*server)->ReloadAuth().ok());
  auto status = As(**server, "admin-token").GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(absl::StrContains(status->auth_problem(), "does not parse"))
      << status->auth_problem();
}

TEST_F(AuthTest, AnAuthFileOthersCanReadFailsTheStart) {
  WriteAuth(Principals(true));
  std::filesystem::permissions(dir_.Sub("auth.textproto"),
                               std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  auto server = Server::Start(WithAuth());
  ASSERT_FALSE(server.ok());
  EXPECT_TRUE(absl::StrContains(server.status().message(), "chmod 600"))
      << server.status();
}

TEST_F(AuthTest, ABadAuthFileFailsTheStart) {
  WriteAuth(
      "principals { name: \"x\" token_sha256: \"abc\" role: \"reader\" }");
  auto server = Server::Start(WithAuth());
  ASSERT_FALSE(server.ok());
  EXPECT_TRUE(absl::StrContains(server.status().message(), "64 hex digits"))
      << server.status();
}

// Two streams and two views, for grants on names.
v1::Definitions TwoStreamsTwoViews() {
  v1::Definitions d = testing::OrdersDefinitions();
  v1::StreamDef clicks = testing::OrdersStream();
  clicks.set_name("clicks");
  *d.add_streams() = clicks;
  for (const char* name : {"orders_a", "orders_b"}) {
    auto* view = d.add_views();
    view->set_name(name);
    view->set_version(1);
    view->set_stream("orders");
    *view->add_features() = testing::Feature("n", "count", "", "7d");
  }
  return d;
}

int64_t EventsOf(Client& client, const std::string& stream) {
  auto status = client.GetStatus();
  if (!status.ok()) return -1;
  for (const auto& s : status->streams()) {
    if (s.name() == stream) return static_cast<int64_t>(s.events());
  }
  return -1;
}

TEST_F(AuthTest, GrantsNameActionsOnStreamAndViewPatterns) {
  WriteAuth(absl::StrCat(
      "principals { name: \"ops\" token_sha256: \"", Hash("admin-token"),
      "\" role: \"admin\" }\n",
      "principals { name: \"orders-pipeline\" token_sha256: \"",
      Hash("orders-token"),
      "\" grants { role: \"writer\" streams: \"orders\" } }\n",
      "principals { name: \"analyst\" token_sha256: \"", Hash("reader-token"),
      "\" grants { role: \"reader\" views: \"*_a\" }"
      " grants { actions: \"read_events\" streams: \"ord*\" } }\n",
      "principals { name: \"monitor\" token_sha256: \"", Hash("status-token"),
      "\" grants { actions: \"status\" } }\n"));
  auto captured = std::make_unique<StderrFile>(dir_.Sub("stderr.log"));
  auto server = Server::Start(WithAuth());
  ASSERT_TRUE(server.ok()) << server.status();
  Client admin = As(**server, "admin-token");
  Client writer = As(**server, "orders-token");
  Client reader = As(**server, "reader-token");
  Client monitor = As(**server, "status-token");

  v1::ApplyDefinitionsRequest apply;
  *apply.mutable_definitions() = TwoStreamsTwoViews();
  EXPECT_EQ(writer.ApplyDefinitions(apply).status().code(),
            absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(admin.ApplyDefinitions(apply).ok());

  // A writer of orders writes orders, not clicks; a reader writes nothing.
  v1::IngestRequest orders;
  orders.set_stream("orders");
  *orders.add_events() =
      testing::Order("a1", "u", 1795478400LL * 1000000, 1);
  v1::IngestRequest clicks = orders;
  clicks.set_stream("clicks");
  ASSERT_TRUE(writer.Ingest(orders).ok());
  auto denied = writer.Ingest(clicks);
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(
      denied.status().message(),
      "principal 'orders-pipeline' may not ingest into stream 'clicks'"))
      << denied.status();
  v1::IngestRequest more = orders;
  more.mutable_events(0)->set_event_id("a2");
  EXPECT_EQ(reader.Ingest(more).status().code(),
            absl::StatusCode::kPermissionDenied);
  // IngestStream: the denied batch ends the call, naming it; the batch
  // before it is kept.
  int sent = 0;
  auto streamed = writer.IngestStream([&](v1::IngestRequest* r) {
    if (sent == 2) return false;
    *r = sent == 0 ? more : clicks;
    ++sent;
    return true;
  });
  EXPECT_EQ(streamed.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(streamed.status().message(), "batch 1"))
      << streamed.status();
  EXPECT_EQ(EventsOf(admin, "orders"), 2);
  EXPECT_EQ(EventsOf(admin, "clicks"), 0);

  // The reader reads view orders_a and the events of orders; not view
  // orders_b, and the writer reads no view.
  v1::GetFeaturesRequest get;
  get.set_view("orders_a");
  get.add_entities("u");
  EXPECT_TRUE(reader.GetFeatures(get).ok());
  EXPECT_EQ(writer.GetFeatures(get).status().code(),
            absl::StatusCode::kPermissionDenied);
  get.set_view("orders_b");
  EXPECT_EQ(reader.GetFeatures(get).status().code(),
            absl::StatusCode::kPermissionDenied);
  v1::SnapshotRequest snapshot;
  snapshot.set_view("orders_b");
  const absl::Status snap_b =
      reader.Snapshot(snapshot, [](const v1::SnapshotChunk&) { return true; });
  EXPECT_EQ(snap_b.code(), absl::StatusCode::kPermissionDenied) << snap_b;
  EXPECT_TRUE(absl::StrContains(snap_b.message(),
                                "may not read features of view 'orders_b'"))
      << snap_b;
  snapshot.set_view("orders_a");
  int rows = 0;
  EXPECT_TRUE(reader
                  .Snapshot(snapshot,
                            [&](const v1::SnapshotChunk& c) {
                              rows += c.rows_size();
                              return true;
                            })
                  .ok());
  EXPECT_EQ(rows, 1);
  v1::JoinFeaturesRequest join;
  join.set_view("orders_b");
  const absl::Status join_b = reader.JoinFeatures(
      join, [](v1::JoinFeaturesRequest*) -> absl::StatusOr<bool> { return false; },
      [](const v1::JoinFeaturesResponse&) { return true; });
  EXPECT_EQ(join_b.code(), absl::StatusCode::kPermissionDenied) << join_b;
  v1::ReadEventsRequest read;
  const auto read_events = [&](Client& client, const char* stream) {
    read.set_stream(stream);
    return client
        .ReadEvents(read, [](const v1::ReadEventsResponse&) { return true; })
        .code();
  };
  EXPECT_EQ(read_events(reader, "orders"), absl::StatusCode::kOk);
  EXPECT_EQ(read_events(reader, "clicks"), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(read_events(writer, "orders"), absl::StatusCode::kOk);
  // A status-only principal sees status, nothing else.
  EXPECT_TRUE(monitor.GetStatus().ok());
  EXPECT_TRUE(monitor.ListDefinitions().ok());
  EXPECT_EQ(read_events(monitor, "orders"),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(reader.GetStatus().status().code(), absl::StatusCode::kOk);
  server->reset();

  // Audit lines: principal, peer, method, object, outcome; never a token.
  const std::string log = captured->Text();
  captured.reset();
  EXPECT_TRUE(absl::StrContains(
      log,
      "audit: principal=orders-pipeline peer=ipv4:127.0.0.1:"))
      << log;
  EXPECT_TRUE(absl::StrContains(log,
                                "method=Ingest object=stream:clicks "
                                "outcome=PERMISSION_DENIED"))
      << log;
  EXPECT_TRUE(absl::StrContains(
      log,
      "method=Ingest object=stream:orders outcome=OK batches=1 accepted=1 "
      "duplicates=0 rejected=0"))
      << log;
  EXPECT_TRUE(absl::StrContains(
      log, "method=IngestStream object=stream:orders "
           "outcome=PERMISSION_DENIED batches=1 accepted=1"))
      << log;
  EXPECT_TRUE(absl::StrContains(log, "principal=ops"))
      << log;
  EXPECT_TRUE(absl::StrContains(log, "method=ApplyDefinitions "
                                     "object=definitions outcome=OK changes:"))
      << log;
  for (const char* token : {"admin-token", "orders-token", "reader-token",
                            "status-token"}) {
    EXPECT_FALSE(absl::StrContains(log, token)) << token;
  }
}

TEST_F(AuthTest, BadGrantsFailTheStartNamingTheProblem) {
  const std::pair<const char*, const char*> cases[] = {
      {"grants { actions: \"ingest\" }", "its actions need objects"},
      {"grants { actions: \"delete\" streams: \"*\" }",
       "action 'delete' is not one of"},
      {"grants { streams: \"*\" }", "names no role and no action"},
      {"grants { role: \"owner\" streams: \"*\" }",
       "role 'owner' is not one of"},
      {"grants { role: \"reader\" streams: \"\" }", "an empty name pattern"},
      {"", "grants nothing"},
  };
  for (const auto& [grant, problem] : cases) {
    WriteAuth(absl::StrCat("principals { name: \"p\" token_sha256: \"",
                           Hash("t"), "\" ", grant, " }"));
    auto server = Server::Start(WithAuth());
    ASSERT_FALSE(server.ok()) << grant;
    EXPECT_TRUE(absl::StrContains(server.status().message(), problem))
        << grant << ": " << server.status();
  }
  WriteAuth(absl::StrCat(
      "principals { name: \"p\" token_sha256: \"", Hash("t"),
      "\" role: \"reader\" }\nprincipals { name: \"q\" token_sha256: \"",
      Hash("t"), "\" role: \"admin\" }"));
  auto twice = Server::Start(WithAuth());
  ASSERT_FALSE(twice.ok());
  EXPECT_TRUE(absl::StrContains(twice.status().message(), "listed twice"))
      << twice.status();
}

TEST(AuthPatternTest, StarMatchesAnyRun) {
  EXPECT_TRUE(MatchesPattern("*", ""));
  EXPECT_TRUE(MatchesPattern("*", "orders"));
  EXPECT_TRUE(MatchesPattern("orders", "orders"));
  EXPECT_FALSE(MatchesPattern("orders", "orders2"));
  EXPECT_FALSE(MatchesPattern("orders", "order"));
  EXPECT_TRUE(MatchesPattern("orders_*", "orders_eu"));
  EXPECT_TRUE(MatchesPattern("orders_*", "orders_"));
  EXPECT_FALSE(MatchesPattern("orders_*", "orders"));
  EXPECT_TRUE(MatchesPattern("*_7d", "spend_7d"));
  EXPECT_TRUE(MatchesPattern("a*b*c", "aXbYbZc"));
  EXPECT_FALSE(MatchesPattern("a*b*c", "aXbYbZ"));
  EXPECT_TRUE(MatchesPattern("**a", "ba"));
}

// A principal at its cap on streaming calls is refused; others are not.
TEST_F(AuthTest, PerPrincipalCapsOnStreamingCalls) {
  WriteAuth(absl::StrCat(
      "principals { name: \"ops\" token_sha256: \"", Hash("admin-token"),
      "\" role: \"admin\" }\n",
      "principals { name: \"job\" token_sha256: \"", Hash("job-token"),
      "\" role: \"reader\" max_streaming_calls: 1 }\n"));
  auto server = Server::Start(WithAuth());
  ASSERT_TRUE(server.ok()) << server.status();
  v1::ApplyDefinitionsRequest apply;
  *apply.mutable_definitions() = TwoStreamsTwoViews();
  ASSERT_TRUE(As(**server, "admin-token").ApplyDefinitions(apply).ok());

  // The job holds one call open: a join that has not sent its first message.
  auto channel = grpc::CreateChannel((*server)->address(),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::FeatureStore::NewStub(channel);
  grpc::ClientContext held;
  held.AddMetadata("authorization", "Bearer job-token");
  // Waits out a connection attempt instead of failing fast, so the held call
  // is open on the server however slowly a loaded machine connects.
  held.set_wait_for_ready(true);
  auto open = stub->JoinFeatures(&held);

  v1::ReadEventsRequest read;
  read.set_stream("orders");
  const auto read_events = [&](const char* token) {
    return As(**server, token).ReadEvents(
        read, [](const v1::ReadEventsResponse&) { return true; });
  };
  // The held call is admitted asynchronously: wait until it counts.
  absl::Status refused;
  for (int i = 0; i < 400; ++i) {
    refused = read_events("job-token");
    if (!refused.ok()) break;
    absl::SleepFor(absl::Milliseconds(25));
  }
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_TRUE(absl::StrContains(refused.message(), "principal 'job'"))
      << refused;
  // Another principal is served meanwhile.
  EXPECT_TRUE(read_events("admin-token").ok());

  // Once the held call ends, the job is served again.
  held.TryCancel();
  open->Finish().IgnoreError();
  absl::Status again;
  for (int i = 0; i < 400; ++i) {
    again = read_events("job-token");
    if (again.ok()) break;
    absl::SleepFor(absl::Milliseconds(25));
  }
  EXPECT_TRUE(again.ok()) << again;
}

// --insecure_listen serves a non-loopback address and keeps warning.
TEST_F(AuthTest, InsecureListenWarnsAtStartAndPeriodically) {
  ServerOptions options;
  options.listen = "0.0.0.0:0";
  options.data_dir = dir_.Sub("data");
  options.insecure_listen = true;
  options.insecure_warning_every = absl::Milliseconds(20);
  auto captured = std::make_unique<StderrFile>(dir_.Sub("stderr.log"));
  auto server = Server::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  ClientOptions client_options;
  client_options.timeout = std::chrono::seconds(10);
  Client client(absl::StrCat("127.0.0.1:", (*server)->port()), client_options);
  EXPECT_TRUE(client.GetStatus().ok());
  // One warning at start, then one per period: wait (bounded) for a repeat.
  const std::string warning = "--insecure_listen: serving 0.0.0.0:";
  for (int i = 0; i < 1000 && Count(captured->Text(), warning) < 2; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  server->reset();
  const std::string log = captured->Text();
  captured.reset();
  EXPECT_GE(Count(log, warning), 2u) << log;
  EXPECT_TRUE(absl::StrContains(log, "in plain text")) << log;
}

// A service is read with grants on it and on every view it reads.
TEST_F(AuthTest, ReadingAServiceNeedsItsViewsToo) {
  WriteAuth(absl::StrCat(
      "principals { name: \"ops\" token_sha256: \"", Hash("admin-token"),
      "\" role: \"admin\" }\n",
      "principals { name: \"half\" token_sha256: \"", Hash("half-token"),
      "\" grants { role: \"reader\" services: \"both\" views: \"orders_a\" } }\n",
      "principals { name: \"full\" token_sha256: \"", Hash("full-token"),
      "\" grants { role: \"reader\" services: \"both\" views: \"orders_*\" } }\n"));
  auto server = Server::Start(WithAuth());
  ASSERT_TRUE(server.ok()) << server.status();
  v1::ApplyDefinitionsRequest apply;
  *apply.mutable_definitions() = TwoStreamsTwoViews();
  auto* service = apply.mutable_definitions()->add_services();
  service->set_name("both");
  service->set_version(1);
  for (const char* view : {"orders_a", "orders_b"}) {
    auto* part = service->add_parts();
    part->set_view(view);
    part->set_view_version(1);
    part->set_key("user_id");
    part->set_prefix(absl::StrCat(view, "_"));
  }
  ASSERT_TRUE(As(**server, "full-token").ApplyDefinitions(apply).status().code() ==
              absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(As(**server, "admin-token").ApplyDefinitions(apply).ok());
  v1::GetFeaturesRequest get;
  get.set_service("both");
  (*get.add_key_rows()->mutable_keys())["user_id"] = "u";
  auto half = As(**server, "half-token").GetFeatures(get);
  EXPECT_EQ(half.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(half.status().message(),
                                "may not read features of view 'orders_b'"))
      << half.status();
  auto full = As(**server, "full-token").GetFeatures(get);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->feature_names_size(), 2);
  // A snapshot of the service is checked the same way.
  v1::SnapshotRequest snapshot;
  snapshot.set_service("both");
  auto no_chunk = [](const v1::SnapshotChunk&) { return true; };
  absl::Status half_snapshot =
      As(**server, "half-token").Snapshot(snapshot, no_chunk);
  EXPECT_EQ(half_snapshot.code(), absl::StatusCode::kPermissionDenied)
      << half_snapshot;
  EXPECT_TRUE(As(**server, "full-token").Snapshot(snapshot, no_chunk).ok());
}

}  // namespace
}  // namespace rawfeat
