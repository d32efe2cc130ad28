// Issue 13, transport: TLS and mutual TLS on rawfeatd's port, the client's
// TLS options, and the refusal to serve a non-loopback address in plain
// text. Certificates are made by the openssl CLI in a private temp dir.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/common/hash.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
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

}  // namespace
}  // namespace rawfeat
