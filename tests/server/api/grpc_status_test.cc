// The one conversion from absl::Status to grpc::Status: codes map one to one, and a status that
// names a field carries a google.rpc.BadRequest naming it.
#include "server/api/grpc_status.h"

#include "domain/errors.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"

namespace fidelis::server {
namespace {

TEST(GrpcStatusTest, EveryCanonicalCodeMapsToTheSameGrpcCode) {
  for (int code = 0; code <= 16; ++code) {
    const absl::Status status(static_cast<absl::StatusCode>(code), code == 0 ? "" : "why");
    const grpc::Status converted = ToGrpcStatus(status);
    EXPECT_EQ(static_cast<int>(converted.error_code()), code);
    if (code != 0) {
      EXPECT_EQ(converted.error_message(), "why");
    }
    EXPECT_TRUE(converted.error_details().empty());
  }
}

TEST(GrpcStatusTest, AFieldErrorCarriesABadRequestNamingTheField) {
  const grpc::Status converted =
      ToGrpcStatus(InvalidField("amount.minor_units", "must be positive, got 0"));
  EXPECT_EQ(converted.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(converted.error_message(), "amount.minor_units: must be positive, got 0");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(converted.error_details()));
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad_request));
  ASSERT_EQ(bad_request.field_violations_size(), 1);
  EXPECT_EQ(bad_request.field_violations(0).field(), "amount.minor_units");
  EXPECT_EQ(bad_request.field_violations(0).description(), "must be positive, got 0");
}

TEST(GrpcStatusTest, AnRpcStatusCarriesTheSameCodeMessageAndField) {
  google::rpc::Status plain = ToRpcStatus(absl::NotFoundError("account x does not exist"));
  EXPECT_EQ(plain.code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(plain.message(), "account x does not exist");
  EXPECT_EQ(plain.details_size(), 0);
  google::rpc::Status ok = ToRpcStatus(absl::OkStatus());
  EXPECT_EQ(ok.code(), 0);
  google::rpc::Status field = ToRpcStatus(InvalidField("commands[1].make_deposit", "bad"));
  google::rpc::BadRequest bad_request;
  ASSERT_EQ(field.details_size(), 1);
  ASSERT_TRUE(field.details(0).UnpackTo(&bad_request));
  EXPECT_EQ(bad_request.field_violations(0).field(), "commands[1].make_deposit");
}

}  // namespace
}  // namespace fidelis::server
