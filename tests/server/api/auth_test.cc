// Authentication and transport: bearer tokens on admin and client RPCs, TLS with a
// self-signed certificate generated here, mTLS, and the refusal to listen in the open.
#include "server/api/auth.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "grpcpp/security/credentials.h"
#include "tests/server/server_fixture.h"

namespace fidelis::testing {
namespace {

constexpr char kAdminToken[] = "admin-token-0123456789";
constexpr char kClientToken[] = "client-token-0123456789";

std::unique_ptr<grpc::ClientContext> WithToken(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

class AuthTest : public ServerTest {
 protected:
  void Configure(server::ServerOptions& options) override {
    options.admin_token = kAdminToken;
    options.client_token = kClientToken;
  }

  grpc::StatusCode RebuildWith(const std::string& token) {
    auto context = WithToken(token);
    v1::RebuildProjectionRequest request;
    request.set_projection("AccountSummary");
    auto reader = admin_->RebuildProjection(context.get(), request);
    v1::RebuildProgress progress;
    while (reader->Read(&progress)) {
    }
    return reader->Finish().error_code();
  }
  grpc::StatusCode CancelWith(const std::string& token) {
    v1::CancelRebuildRequest request;
    request.set_rebuild_id("rb-000000000000");
    v1::RebuildInfo info;
    return admin_->CancelRebuild(WithToken(token).get(), request, &info).error_code();
  }
};

TEST_F(AuthTest, AdminRpcsNeedTheAdminToken) {
  EXPECT_EQ(RebuildWith(""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(RebuildWith("wrong-token-0123456789"), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(RebuildWith(kClientToken), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(RebuildWith(kAdminToken), grpc::StatusCode::OK);
  EXPECT_EQ(CancelWith(""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CancelWith("wrong-token-0123456789"), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(CancelWith(kAdminToken), grpc::StatusCode::NOT_FOUND);  // Past authentication.
}

TEST_F(AuthTest, ClientRpcsNeedTheClientToken) {
  v1::OpenAccountRequest request;
  request.set_account_number("N1");
  request.set_holder_name("H");
  request.mutable_opening_deposit()->set_currency("EUR");
  v1::CommandResult result;
  EXPECT_EQ(commands_->OpenAccount(WithToken("").get(), request, &result).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(
      commands_->OpenAccount(WithToken("nope-nope-nope-nope").get(), request, &result).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  v1::ExecuteCommandsRequest batch;
  *batch.add_commands()->mutable_open_account() = request;
  v1::ExecuteCommandsResponse outcomes;
  EXPECT_EQ(commands_->ExecuteCommands(WithToken("").get(), batch, &outcomes).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(
      commands_->ExecuteCommands(WithToken(kAdminToken + std::string("x")).get(), batch, &outcomes)
          .error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Head(), 0u);
  ASSERT_TRUE(commands_->OpenAccount(WithToken(kClientToken).get(), request, &result).ok());
  v1::ReadAllResponse all;
  EXPECT_EQ(log_->ReadAll(WithToken("").get(), {}, &all).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(log_->ReadAll(WithToken(kClientToken).get(), {}, &all).ok());
  v1::ListProjectionsResponse projections;
  EXPECT_EQ(admin_->ListProjections(WithToken("").get(), {}, &projections).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto malformed = WithToken("");
  malformed->AddMetadata("authorization", std::string("Basic ") + kClientToken);
  EXPECT_EQ(admin_->ListProjections(malformed.get(), {}, &projections).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST(ConstantTimeEqualsTest, ComparesWholeTokens) {
  EXPECT_TRUE(server::ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(server::ConstantTimeEquals("abd", "abc"));
  EXPECT_FALSE(server::ConstantTimeEquals("ab", "abc"));
  EXPECT_FALSE(server::ConstantTimeEquals("abcd", "abc"));
  EXPECT_FALSE(server::ConstantTimeEquals("", "abc"));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A self-signed certificate for localhost and 127.0.0.1, made with openssl in `dir`.
bool MakeCertificate(const std::string& dir, const std::string& name) {
  const std::string command =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
      dir + "/" + name + ".key -out " + dir + "/" + name + ".crt >/dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

class TlsTest : public ServerTest {
 protected:
  void SetUp() override {}
  void Configure(server::ServerOptions& options) override {
    options.tls_cert_file = dir_.Sub("server.crt");
    options.tls_key_file = dir_.Sub("server.key");
    if (mtls_) options.tls_client_ca_file = dir_.Sub("client.crt");
    options.admin_token = kAdminToken;
  }
  std::unique_ptr<v1::AccountCommands::Stub> SecureStub(bool with_client_cert) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadFile(dir_.Sub("server.crt"));
    if (with_client_cert) {
      ssl.pem_cert_chain = ReadFile(dir_.Sub("client.crt"));
      ssl.pem_private_key = ReadFile(dir_.Sub("client.key"));
    }
    auto channel = grpc::CreateChannel(server_->address(), grpc::SslCredentials(ssl));
    return v1::AccountCommands::NewStub(channel);
  }
  bool mtls_ = false;
};

TEST_F(TlsTest, ServesOverTlsWithASelfSignedCertificate) {
  ASSERT_TRUE(MakeCertificate(dir_.path(), "server")) << "openssl is needed for this test";
  StartServer();
  v1::PingResponse pong;
  EXPECT_TRUE(SecureStub(false)->Ping(Ctx().get(), {}, &pong).ok());
  // A plaintext client cannot talk to a TLS server.
  EXPECT_FALSE(commands_->Ping(Ctx(absl::Seconds(2)).get(), {}, &pong).ok());
}

TEST_F(TlsTest, MutualTlsRejectsClientsWithoutACertificate) {
  ASSERT_TRUE(MakeCertificate(dir_.path(), "server"));
  ASSERT_TRUE(MakeCertificate(dir_.path(), "client"));
  mtls_ = true;
  StartServer();
  v1::PingResponse pong;
  EXPECT_FALSE(SecureStub(false)->Ping(Ctx(absl::Seconds(2)).get(), {}, &pong).ok());
  EXPECT_TRUE(SecureStub(true)->Ping(Ctx().get(), {}, &pong).ok());
}

TEST(SafeDefaultsTest, ANonLoopbackAddressNeedsTlsAndATokenOrInsecure) {
  TempDir dir;
  server::ServerOptions options;
  options.listen_address = "0.0.0.0:0";
  options.data_dir = dir.Sub("data");
  auto refused = server::FidelisServer::Start(options);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("--insecure"), absl::string_view::npos);
  options.insecure = true;
  auto allowed = server::FidelisServer::Start(options);
  ASSERT_OK(allowed);
  (*allowed)->Shutdown();
}

}  // namespace
}  // namespace fidelis::testing
