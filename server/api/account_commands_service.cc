#include "server/api/account_commands_service.h"

#include <functional>
#include <memory>
#include <vector>

#include "domain/strings.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/impl/codegen/server_callback_handlers.h"
#include "server/api/grpc_status.h"
#include "server/api/request_parsing.h"
#include "server/write/command_batch.h"

namespace fidelis::server {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MethodDescriptor;
using RawHandler = grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, grpc::ByteBuffer>;

constexpr std::string_view kExecuteCommands = "ExecuteCommands";
constexpr std::string_view kPing = "Ping";

const google::protobuf::ServiceDescriptor& CommandsService() {
  return *v1::ExecuteCommandsRequest::descriptor()->file()->FindServiceByName("AccountCommands");
}

// The batch's answer: each command's status and, when OK, its response in the oneof field of
// the response's type.
v1::ExecuteCommandsResponse ToResponse(std::vector<BatchItem> items) {
  v1::ExecuteCommandsResponse response;
  const google::protobuf::OneofDescriptor* result =
      v1::BatchOutcome::descriptor()->FindOneofByName("result");
  for (BatchItem& item : items) {
    v1::BatchOutcome* outcome = response.add_outcomes();
    *outcome->mutable_status() = ToRpcStatus(item.status);
    if (item.response == nullptr) continue;
    for (int f = 0; f < result->field_count(); ++f) {
      const FieldDescriptor* field = result->field(f);
      if (field->message_type() != item.response->GetDescriptor()) continue;
      outcome->GetReflection()->SetAllocatedMessage(outcome, item.response.release(), field);
      break;
    }
  }
  return response;
}

}  // namespace

absl::Status AccountCommandsService::CheckTable() {
  const google::protobuf::ServiceDescriptor& service = CommandsService();
  for (int m = 0; m < service.method_count(); ++m) {
    const MethodDescriptor* method = service.method(m);
    if (method->name() == kExecuteCommands || method->name() == kPing) continue;
    const CommandRow* row = FindCommandRow(method->input_type());
    if (row == nullptr || row->method() != method->name() ||
        row->response_type() != method->output_type()) {
      return absl::InternalError(
          StrCat("AccountCommands.", method->name(), " has no row in the command table with ",
                 method->input_type()->full_name(), " and ", method->output_type()->full_name()));
    }
  }
  return absl::OkStatus();
}

AccountCommandsService::AccountCommandsService(CommandHandler* handler, const Authenticator* auth,
                                               const Clock* clock)
    : handler_(handler), auth_(auth), clock_(clock) {
  // The generated service lists the methods in the proto's order, as the descriptor does.
  const google::protobuf::ServiceDescriptor& service = CommandsService();
  for (int m = 0; m < service.method_count(); ++m) {
    const MethodDescriptor* method = service.method(m);
    std::function<grpc::ServerUnaryReactor*(grpc::CallbackServerContext*, const grpc::ByteBuffer*,
                                            grpc::ByteBuffer*)>
        serve;
    if (method->name() == kExecuteCommands) {
      serve = [this](auto* context, auto* request, auto* response) {
        return ServeBatch(context, request, response);
      };
    } else if (method->name() == kPing) {
      serve = [this](auto* context, auto* request, auto* response) {
        return ServePing(context, request, response);
      };
    } else if (const CommandRow* row = FindCommandRow(method->input_type())) {
      serve = [this, row](auto* context, auto* request, auto* response) {
        return ServeCommand(*row, context, request, response);
      };
    } else {
      continue;  // CheckTable() reports it; the method answers UNIMPLEMENTED.
    }
    MarkMethodRawCallback(m, new RawHandler(std::move(serve)));
  }
}

grpc::ServerUnaryReactor* AccountCommandsService::ServeCommand(const CommandRow& row,
                                                               grpc::CallbackServerContext* context,
                                                               const grpc::ByteBuffer* request,
                                                               grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::unique_ptr<Message> parsed = row.NewRequest();
  absl::Status admitted = auth_->Check(*context, Scope::kClient);
  if (admitted.ok()) admitted = ParseRequest(*request, *parsed);
  if (!admitted.ok()) {
    reactor->Finish(ToGrpcStatus(admitted));
    return reactor;
  }
  row.Run(*handler_, *parsed, CallDeadline(*context, absl::InfiniteDuration(), clock_->Now()),
          [reactor, response](absl::StatusOr<std::unique_ptr<Message>> answer) {
            if (!answer.ok()) return reactor->Finish(ToGrpcStatus(answer.status()));
            Reply(reactor, response, **answer);
          });
  return reactor;
}

grpc::ServerUnaryReactor* AccountCommandsService::ServeBatch(grpc::CallbackServerContext* context,
                                                             const grpc::ByteBuffer* request,
                                                             grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto batch = std::make_unique<v1::ExecuteCommandsRequest>();
  absl::Status admitted = auth_->Check(*context, Scope::kClient);
  if (admitted.ok()) admitted = ParseRequest(*request, *batch);
  if (admitted.ok()) admitted = ValidateBatch(*batch);
  if (!admitted.ok()) {
    reactor->Finish(ToGrpcStatus(admitted));
    return reactor;
  }
  RunBatch(handler_, std::move(batch),
           CallDeadline(*context, absl::InfiniteDuration(), clock_->Now()),
           [reactor, response](std::vector<BatchItem> items) {
             Reply(reactor, response, ToResponse(std::move(items)));
           });
  return reactor;
}

grpc::ServerUnaryReactor* AccountCommandsService::ServePing(grpc::CallbackServerContext* context,
                                                            const grpc::ByteBuffer* request,
                                                            grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  v1::PingRequest ping;
  if (absl::Status parsed = ParseRequest(*request, ping); !parsed.ok()) {
    reactor->Finish(ToGrpcStatus(parsed));
  } else {
    Reply(reactor, response, v1::PingResponse());
  }
  return reactor;
}

}  // namespace fidelis::server
