#include "server/api/version_metadata.h"

#include <cstring>

#include "domain/version.h"

namespace fidelis::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

class VersionMetadata : public grpc::experimental::Interceptor {
 public:
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      static const std::string value = std::string(Version()) + " (commit " + GitCommit() + ")";
      methods->GetSendInitialMetadata()->emplace(kVersionMetadata, value);
    }
    methods->Proceed();
  }
};

class VersionMetadataFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    constexpr char kHealth[] = "/grpc.health.v1.Health/";
    if (std::strncmp(info->method(), kHealth, sizeof(kHealth) - 1) != 0) return nullptr;
    return new VersionMetadata();
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewVersionMetadataFactory() {
  return std::make_unique<VersionMetadataFactory>();
}

}  // namespace fidelis::server
