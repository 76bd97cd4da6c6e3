// Every grpcurl line of README.md, run against a real server the way grpcurl runs it: the
// service's descriptors come from server reflection (no proto file), the JSON body is turned
// into the request with them, and the call goes through a generic stub. So reflection must
// describe every service the README calls, the health service included.
#include <fstream>
#include <regex>
#include <sstream>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/descriptor_database.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "tests/server/api/reflection_wire.pb.h"
#include "tests/server/server_fixture.h"

namespace fidelis::testing {
namespace {

using reflection::ServerReflectionRequest;
using reflection::ServerReflectionResponse;

// One grpcurl command of the README, its continuation lines joined.
struct GrpcurlLine {
  std::string text;
  std::string body;    // The -d argument, empty when none.
  std::string target;  // The last word: "list", or service/method.
};

std::vector<GrpcurlLine> ReadmeGrpcurlLines() {
  std::ifstream in(std::string(FIDELIS_SOURCE_DIR) + "/README.md");
  std::vector<GrpcurlLine> lines;
  std::string line;
  std::string pending;
  while (std::getline(in, line)) {
    if (pending.empty() && line.rfind("grpcurl ", 0) != 0) continue;
    const size_t comment = line.find("   #");
    if (comment != std::string::npos) line = line.substr(0, comment);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    const bool continued = !line.empty() && line.back() == '\\';
    if (continued) line.pop_back();
    pending += line;
    if (continued) continue;
    GrpcurlLine g;
    g.text = pending;
    pending.clear();
    std::smatch m;
    if (std::regex_search(g.text, m, std::regex(R"(-d '(.*)')"))) g.body = m[1];
    std::istringstream words(g.text);
    std::string word;
    while (words >> word) g.target = word;
    lines.push_back(g);
  }
  return lines;
}

std::string ToString(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// A generic call: sends `requests` (serialized messages), returns every response and the status.
grpc::Status GenericCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                         const std::vector<std::string>& requests,
                         std::vector<std::string>* responses) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::CompletionQueue cq;
  void* tag = nullptr;
  bool ok = false;
  auto call = stub.PrepareCall(&context, method, &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  cq.Next(&tag, &ok);
  for (const std::string& request : requests) {
    grpc::Slice slice(request);
    grpc::ByteBuffer buffer(&slice, 1);
    call->Write(buffer, reinterpret_cast<void*>(2));
    cq.Next(&tag, &ok);
  }
  call->WritesDone(reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  while (true) {
    grpc::ByteBuffer received;
    call->Read(&received, reinterpret_cast<void*>(4));
    cq.Next(&tag, &ok);
    if (!ok) break;
    responses->push_back(ToString(received));
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  return status;
}

class ReadmeGrpcurlTest : public ServerTest {
 protected:
  ServerReflectionResponse Reflect(const ServerReflectionRequest& request) {
    std::vector<std::string> responses;
    grpc::Status status =
        GenericCall(channel_, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                    {request.SerializeAsString()}, &responses);
    EXPECT_TRUE(status.ok()) << status.error_message();
    ServerReflectionResponse response;
    EXPECT_EQ(responses.size(), 1u);
    if (responses.size() == 1) {
      EXPECT_TRUE(response.ParseFromString(responses[0]));
    }
    return response;
  }

  // Adds the files reflection returns for `symbol` (with their dependencies) to the database.
  void Describe(const std::string& symbol) {
    ServerReflectionRequest request;
    request.set_file_containing_symbol(symbol);
    ServerReflectionResponse response = Reflect(request);
    ASSERT_TRUE(response.has_file_descriptor_response())
        << symbol << ": " << response.error_response().error_message();
    for (const std::string& bytes : response.file_descriptor_response().file_descriptor_proto()) {
      google::protobuf::FileDescriptorProto file;
      ASSERT_TRUE(file.ParseFromString(bytes));
      if (!seen_.insert(file.name()).second) continue;
      ASSERT_TRUE(database_.Add(file)) << file.name();
    }
  }

  std::set<std::string> seen_;
  google::protobuf::SimpleDescriptorDatabase database_;
};

TEST_F(ReadmeGrpcurlTest, EveryGrpcurlLineOfTheReadmeWorksThroughReflection) {
  const std::vector<GrpcurlLine> lines = ReadmeGrpcurlLines();
  ASSERT_GE(lines.size(), 5u) << "README.md has lost its grpcurl lines";
  const std::string id = OpenOk("NL91-ABNA-0417", 10000);

  int calls = 0;
  for (const GrpcurlLine& line : lines) {
    SCOPED_TRACE(line.text);
    if (line.target == "list") {
      ServerReflectionRequest request;
      request.set_list_services("*");
      std::set<std::string> services;
      const ServerReflectionResponse listed = Reflect(request);
      for (const auto& s : listed.list_services_response().service()) {
        services.insert(s.name());
      }
      for (const char* want :
           {"fidelis.v1.AccountCommands", "fidelis.v1.AccountQueries", "fidelis.v1.EventLog",
            "fidelis.v1.ProjectionAdmin", "grpc.health.v1.Health"}) {
        EXPECT_TRUE(services.count(want)) << want;
      }
      continue;
    }
    const size_t slash = line.target.find('/');
    ASSERT_NE(slash, std::string::npos) << line.target;
    const std::string service = line.target.substr(0, slash);
    const std::string method_name = line.target.substr(slash + 1);
    Describe(service);
    google::protobuf::DescriptorPool pool(&database_);
    const google::protobuf::ServiceDescriptor* descriptor = pool.FindServiceByName(service);
    ASSERT_NE(descriptor, nullptr) << "reflection does not describe " << service;
    const google::protobuf::MethodDescriptor* method = descriptor->FindMethodByName(method_name);
    ASSERT_NE(method, nullptr) << method_name;

    // The shell's view of the body: '...'$ID'...' puts the account id in.
    std::string body = std::regex_replace(line.body, std::regex(R"('\$ID')"), id);
    google::protobuf::DynamicMessageFactory factory(&pool);
    std::unique_ptr<google::protobuf::Message> request(
        factory.GetPrototype(method->input_type())->New());
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(body, request.get()).ok()) << body;
    std::vector<std::string> responses;
    grpc::Status status = GenericCall(channel_, "/" + service + "/" + method_name,
                                      {request->SerializeAsString()}, &responses);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_FALSE(responses.empty());
    std::unique_ptr<google::protobuf::Message> response(
        factory.GetPrototype(method->output_type())->New());
    ASSERT_TRUE(response->ParseFromString(responses.back()));
    std::string json;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(*response, &json).ok());
    if (method_name == "MakeDeposit") {
      EXPECT_NE(json.find(id), std::string::npos) << json;
    } else if (method_name == "GetAccountSummary") {
      EXPECT_NE(json.find("NL91-ABNA-0417"), std::string::npos) << json;
    } else if (method_name == "RebuildProjection") {
      EXPECT_NE(json.find("\"phase\":\"DONE\""), std::string::npos) << json;
    } else if (method_name == "Check") {
      EXPECT_EQ(json, R"({"status":"SERVING"})");
    }
    ++calls;
  }
  EXPECT_GE(calls, 4);
}

}  // namespace
}  // namespace fidelis::testing
