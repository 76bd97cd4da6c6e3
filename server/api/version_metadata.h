// The build's identity on the wire: every answer of the standard health service
// (grpc.health.v1.Health) carries the initial metadata fidelis-version, "<version> (commit
// <commit>)", so a probe or `grpcurl -v` learns which build it reached. Other methods carry
// nothing extra.
#pragma once

#include <memory>
#include <string>

#include "grpcpp/support/server_interceptor.h"

namespace fidelis::server {

inline constexpr char kVersionMetadata[] = "fidelis-version";

// The factory for ServerBuilder::experimental().SetInterceptorCreators(). Thread-safe: gRPC
// calls it on its own threads, once per call, and it keeps no state.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewVersionMetadataFactory();

}  // namespace fidelis::server
