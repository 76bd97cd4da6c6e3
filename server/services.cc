#include "server/services.h"

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "domain/errors.h"
#include "domain/event_types.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/util/time_util.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "grpcpp/support/proto_buffer_writer.h"
#include "server/grpc_status.h"

namespace fidelis::server {
namespace {

using google::protobuf::util::TimeUtil;

// A query waits at most this long for min_global_position when the call has no deadline.
constexpr absl::Duration kMaxQueryWait = absl::Seconds(30);

// Identifies a request's payload for idempotency: the method and the deterministic encoding of
// the request without its options.
template <typename Request>
std::string Fingerprint(std::string_view method, const Request& request) {
  Request copy = request;
  copy.clear_options();
  std::string out(method);
  out.push_back('\0');
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  copy.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

template <typename Request>
CommandContext ContextOf(std::string_view method, const Request& request, absl::Time deadline) {
  CommandContext context;
  const v1::CommandOptions& options = request.options();
  if (options.has_expected_version()) context.expected_version = options.expected_version();
  context.command_id = options.command_id();
  context.correlation_id = options.correlation_id();
  context.causation_id = options.causation_id();
  if (!context.command_id.empty()) context.fingerprint = Fingerprint(method, request);
  context.deadline = deadline;
  return context;
}

void FillResult(const CommandOutcome& outcome, v1::CommandResult* response) {
  response->set_account_id(outcome.account_id);
  response->set_stream_version(outcome.stream_version);
  response->set_global_position(outcome.global_position);
  response->set_deduplicated(outcome.deduplicated);
}

// The methods' names, which also prefix an idempotency fingerprint: a command sent in a batch
// and the same command sent alone share their command_id.
constexpr std::string_view kOpenAccount = "OpenAccount";
constexpr std::string_view kMakeDeposit = "MakeDeposit";
constexpr std::string_view kMakeWithdrawal = "MakeWithdrawal";
constexpr std::string_view kCloseAccount = "CloseAccount";
constexpr std::string_view kTransferFunds = "TransferFunds";

// Each command's request into the handler. `context` has been validated.
void RunOpen(CommandHandler& handler, const v1::OpenAccountRequest& r, CommandContext context,
             CommandDone done) {
  OpenAccountCommand command;
  command.account_number = r.account_number();
  command.holder_name = r.holder_name();
  command.opening_minor_units = r.opening_deposit().minor_units();
  command.currency = r.opening_deposit().currency();
  handler.OpenAsync(std::move(command), std::move(context), std::move(done));
}

void RunDeposit(CommandHandler& handler, const v1::MakeDepositRequest& r, CommandContext context,
                CommandDone done) {
  handler.DepositAsync(
      {r.account_id(), r.amount().minor_units(), r.amount().currency(), r.reference()},
      std::move(context), std::move(done));
}

void RunWithdrawal(CommandHandler& handler, const v1::MakeWithdrawalRequest& r,
                   CommandContext context, CommandDone done) {
  handler.WithdrawAsync(
      {r.account_id(), r.amount().minor_units(), r.amount().currency(), r.reference()},
      std::move(context), std::move(done));
}

void RunClose(CommandHandler& handler, const v1::CloseAccountRequest& r, CommandContext context,
              CommandDone done) {
  handler.CloseAsync({r.account_id(), r.reason()}, std::move(context), std::move(done));
}

void RunTransfer(CommandHandler& handler, const v1::TransferFundsRequest& r, CommandContext context,
                 TransferDone done) {
  TransferCommand command;
  command.from_account_id = r.from_account_id();
  command.to_account_id = r.to_account_id();
  command.minor_units = r.amount().minor_units();
  command.currency = r.amount().currency();
  command.reference = r.reference();
  std::optional<int64_t> from_expected, to_expected;
  if (r.has_from_expected_version()) from_expected = r.from_expected_version();
  if (r.has_to_expected_version()) to_expected = r.to_expected_version();
  handler.TransferAsync(std::move(command), std::move(context), from_expected, to_expected,
                        std::move(done));
}

void FillTransfer(const TransferOutcome& outcome, v1::TransferFundsResponse* response) {
  response->set_transfer_id(outcome.transfer_id);
  response->set_from_stream_version(outcome.from_version);
  response->set_to_stream_version(outcome.to_version);
  response->set_debit_global_position(outcome.debit_position);
  response->set_credit_global_position(outcome.credit_position);
  response->set_deduplicated(outcome.deduplicated);
}

// The dotted path of the first string field in `bytes`, a serialized `descriptor` message, that
// is not UTF-8 (with the index of each repeated field on the way, as in "commands[2].holder_name");
// empty when there is none or the bytes do not parse that far.
std::string FirstNonUtf8Field(const std::string& bytes,
                              const google::protobuf::Descriptor* descriptor) {
  using google::protobuf::FieldDescriptor;
  using google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  absl::flat_hash_map<int, int> seen;  // Field number -> occurrences so far.
  while (uint32_t tag = in.ReadTag()) {
    const FieldDescriptor* field =
        descriptor->FindFieldByNumber(WireFormatLite::GetTagFieldNumber(tag));
    if (field == nullptr ||
        WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (!WireFormatLite::SkipField(&in, tag)) return "";
      continue;
    }
    std::string name = field->name();
    if (field->is_repeated()) name = StrCat(name, "[", seen[field->number()]++, "]");
    std::string value;
    if (!WireFormatLite::ReadBytes(&in, &value)) return "";
    if (field->type() == FieldDescriptor::TYPE_STRING &&
        !WireFormatLite::VerifyUtf8String(value.data(), static_cast<int>(value.size()),
                                          WireFormatLite::PARSE, field->full_name().c_str())) {
      return name;
    }
    if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
      std::string inner = FirstNonUtf8Field(value, field->message_type());
      if (!inner.empty()) return StrCat(name, ".", inner);
    }
  }
  return "";
}

// Parses a command's request bytes; INVALID_ARGUMENT naming the field protobuf refused.
template <typename Request>
absl::Status ParseRequest(const grpc::ByteBuffer& raw, Request& request) {
  grpc::ByteBuffer copy(raw);  // Reading consumes the buffer, which gRPC owns.
  grpc::ProtoBufferReader reader(&copy);
  if (request.ParseFromZeroCopyStream(&reader)) return absl::OkStatus();
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (raw.Dump(&slices).ok()) {
    for (const grpc::Slice& slice : slices) {
      bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
  }
  std::string field = FirstNonUtf8Field(bytes, Request::descriptor());
  if (!field.empty()) return InvalidField(field, "is not valid UTF-8");
  return absl::InvalidArgumentError(
      StrCat("the request does not parse as ", Request::descriptor()->full_name()));
}

// Finishes a call with `response`.
void Reply(grpc::ServerUnaryReactor* reactor, grpc::ByteBuffer* out,
           const google::protobuf::Message& response) {
  grpc::ProtoBufferWriter writer(out, grpc::kProtoBufferWriterMaxBufferLength,
                                 static_cast<int>(response.ByteSizeLong()));
  if (!response.SerializeToZeroCopyStream(&writer)) {
    return reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, "cannot serialize"));
  }
  reactor->Finish(grpc::Status::OK);
}

// Finishes a command call with `outcome`.
void Answer(grpc::ServerUnaryReactor* reactor, grpc::ByteBuffer* out,
            absl::StatusOr<CommandOutcome> outcome) {
  if (!outcome.ok()) return reactor->Finish(ToGrpcStatus(outcome.status()));
  v1::CommandResult response;
  FillResult(*outcome, &response);
  Reply(reactor, out, response);
}

// The callback that finishes a command call with its outcome.
CommandDone Answering(grpc::ServerUnaryReactor* reactor, grpc::ByteBuffer* out) {
  return [reactor, out](absl::StatusOr<CommandOutcome> outcome) {
    Answer(reactor, out, std::move(outcome));
  };
}

// Authenticates a command call, parses its request and reads its options, then hands them to
// `start` with the call's reactor; on failure, finishes the call.
template <typename Request, typename Start>
grpc::ServerUnaryReactor* Serve(const Authenticator& auth, std::string_view method,
                                grpc::CallbackServerContext* call, const grpc::ByteBuffer* raw,
                                Start start) {
  grpc::ServerUnaryReactor* reactor = call->DefaultReactor();
  Request request;
  CommandContext context;
  absl::Status admitted = auth.Check(*call, Scope::kClient);
  if (admitted.ok()) admitted = ParseRequest(*raw, request);
  if (admitted.ok()) {
    context = ContextOf(method, request, CallDeadline(*call, absl::InfiniteDuration()));
    admitted = ValidateContext(context);
  }
  if (!admitted.ok()) {
    reactor->Finish(ToGrpcStatus(admitted));
  } else {
    start(request, std::move(context), reactor);
  }
  return reactor;
}

// One ExecuteCommands call in flight. Owns itself: it finishes the call and deletes itself when
// the last of its commands has ended.
//
// Commands that name the same account (a transfer names two) form a chain in request order:
// each starts when the one before it has ended, so it is decided on the state that one left.
// The chains run concurrently, so their appends share group commits. A command's callback may
// run on the event log's writer thread; starting the next command of a chain from there puts
// its append ahead of the queue (EventStore::AppendAsync), and the account it loads is the one
// just written, which the handler has cached.
class CommandBatch {
 public:
  static void Start(CommandHandler* handler, std::unique_ptr<v1::ExecuteCommandsRequest> request,
                    absl::Time deadline, grpc::ServerUnaryReactor* reactor, grpc::ByteBuffer* out) {
    auto* batch = new CommandBatch(handler, std::move(request), deadline, reactor, out);
    std::vector<size_t> ready;
    {
      absl::MutexLock lock(&batch->mu_);
      for (size_t i = 0; i < batch->waiting_.size(); ++i) {
        if (batch->waiting_[i] == 0) ready.push_back(i);
      }
    }
    batch->LaunchAll(std::move(ready));
    batch->Release();  // The hold taken in the constructor.
  }

 private:
  CommandBatch(CommandHandler* handler, std::unique_ptr<v1::ExecuteCommandsRequest> request,
               absl::Time deadline, grpc::ServerUnaryReactor* reactor, grpc::ByteBuffer* out)
      : handler_(handler),
        request_(std::move(request)),
        deadline_(deadline),
        reactor_(reactor),
        out_(out) {
    const size_t n = request_->commands_size();
    waiting_.assign(n, 0);
    next_.assign(n, {});
    // Held until Start has launched every command that can start, so that one ending at once
    // cannot finish the call first.
    remaining_ = n + 1;
    for (size_t i = 0; i < n; ++i) response_.add_outcomes();
    absl::flat_hash_map<std::string_view, size_t> last;  // Account -> its latest command.
    for (size_t i = 0; i < n; ++i) {
      for (std::string_view account : AccountsOf(request_->commands(i))) {
        auto [it, first] = last.try_emplace(account, i);
        if (first || it->second == i) continue;
        next_[it->second].push_back(i);
        ++waiting_[i];
        it->second = i;
      }
    }
  }

  // The accounts a command names; none for an open (its account is new).
  static std::vector<std::string_view> AccountsOf(const v1::BatchCommand& command) {
    switch (command.command_case()) {
      case v1::BatchCommand::kMakeDeposit:
        return {command.make_deposit().account_id()};
      case v1::BatchCommand::kMakeWithdrawal:
        return {command.make_withdrawal().account_id()};
      case v1::BatchCommand::kCloseAccount:
        return {command.close_account().account_id()};
      case v1::BatchCommand::kTransferFunds:
        return {command.transfer_funds().from_account_id(),
                command.transfer_funds().to_account_id()};
      default:
        return {};
    }
  }

  // Runs command i through `run` (one of the Run functions above) once its options pass.
  template <typename Request, typename Done>
  void Run(size_t i, std::string_view method, const Request& request,
           void (*run)(CommandHandler&, const Request&, CommandContext, Done), Done done) {
    CommandContext context = ContextOf(method, request, deadline_);
    if (absl::Status valid = ValidateContext(context); !valid.ok()) return End(i, valid);
    run(*handler_, request, std::move(context), std::move(done));
  }

  void Launch(size_t i) {
    const v1::BatchCommand& command = request_->commands(i);
    auto done = [this, i]() -> CommandDone {
      return [this, i](absl::StatusOr<CommandOutcome> outcome) {
        if (!outcome.ok()) return End(i, outcome.status());
        End(i, absl::OkStatus(),
            [&](v1::BatchOutcome& out) { FillResult(*outcome, out.mutable_command()); });
      };
    };
    switch (command.command_case()) {
      case v1::BatchCommand::kOpenAccount:
        return Run(i, kOpenAccount, command.open_account(), &RunOpen, done());
      case v1::BatchCommand::kMakeDeposit:
        return Run(i, kMakeDeposit, command.make_deposit(), &RunDeposit, done());
      case v1::BatchCommand::kMakeWithdrawal:
        return Run(i, kMakeWithdrawal, command.make_withdrawal(), &RunWithdrawal, done());
      case v1::BatchCommand::kCloseAccount:
        return Run(i, kCloseAccount, command.close_account(), &RunClose, done());
      case v1::BatchCommand::kTransferFunds:
        return Run(i, kTransferFunds, command.transfer_funds(), &RunTransfer,
                   TransferDone([this, i](absl::StatusOr<TransferOutcome> outcome) {
                     if (!outcome.ok()) return End(i, outcome.status());
                     End(i, absl::OkStatus(), [&](v1::BatchOutcome& out) {
                       FillTransfer(*outcome, out.mutable_transfer());
                     });
                   }));
      case v1::BatchCommand::COMMAND_NOT_SET:
        break;
    }
    End(i, InvalidField("command", "names no command (or one this server does not know)"));
  }

  // Records command i's outcome, starts the commands that waited for it, and finishes the call
  // after the last one.
  void End(
      size_t i, const absl::Status& status,
      absl::FunctionRef<void(v1::BatchOutcome&)> fill = [](v1::BatchOutcome&) {}) {
    std::vector<size_t> ready;
    {
      absl::MutexLock lock(&mu_);
      v1::BatchOutcome& out = *response_.mutable_outcomes(static_cast<int>(i));
      *out.mutable_status() = ToRpcStatus(InItem(i, status));
      if (status.ok()) fill(out);
      for (size_t next : next_[i]) {
        if (--waiting_[next] == 0) ready.push_back(next);
      }
    }
    LaunchAll(std::move(ready));
    Release();
  }

  // Launches `ready`. A command that ends at once ends inside Launch, and what it readies joins
  // the loop already running on this thread instead of recursing, however long the chain. The
  // caller holds a count (an unreleased command or Start's hold), so the batch outlives the loop.
  void LaunchAll(std::vector<size_t> ready) {
    if (running_.batch == this) {
      running_.queue->insert(running_.queue->end(), ready.begin(), ready.end());
      return;
    }
    const Loop outer = running_;
    running_ = {this, &ready};
    for (size_t k = 0; k < ready.size(); ++k) Launch(ready[k]);
    running_ = outer;
  }

  // `status` as the status of command i: its message and field are prefixed with the
  // command's place in the batch ("commands[3].make_deposit.amount").
  absl::Status InItem(size_t i, const absl::Status& status) const {
    if (status.ok()) return status;
    const v1::BatchCommand& command = request_->commands(i);
    std::string path = StrCat("commands[", i, "]");
    if (const auto* field = v1::BatchCommand::descriptor()->FindFieldByNumber(
            static_cast<int>(command.command_case()))) {
      path = StrCat(path, ".", field->name());
    }
    std::optional<std::string> field = FieldOf(status);
    if (!field) return Annotate(status, path);
    std::string description(status.message());
    if (description.rfind(*field + ": ", 0) == 0) description.erase(0, field->size() + 2);
    return InvalidField(StrCat(path, ".", *field), description);
  }

  void Release() {
    {
      absl::MutexLock lock(&mu_);
      if (--remaining_ > 0) return;
    }
    Reply(reactor_, out_, response_);
    delete this;
  }

  // The LaunchAll loop running on this thread, if any.
  struct Loop {
    const CommandBatch* batch = nullptr;
    std::vector<size_t>* queue = nullptr;
  };
  static thread_local Loop running_;

  CommandHandler* const handler_;
  const std::unique_ptr<v1::ExecuteCommandsRequest> request_;
  const absl::Time deadline_;
  grpc::ServerUnaryReactor* const reactor_;
  grpc::ByteBuffer* const out_;
  // For each command, the commands that wait for it (at most one per account it names).
  std::vector<std::vector<size_t>> next_;

  absl::Mutex mu_;
  v1::ExecuteCommandsResponse response_ ABSL_GUARDED_BY(mu_);
  std::vector<int> waiting_ ABSL_GUARDED_BY(mu_);  // Commands each one still waits for.
  size_t remaining_ ABSL_GUARDED_BY(mu_);          // Commands not ended, plus Start's hold.
};

thread_local CommandBatch::Loop CommandBatch::running_;

// Page tokens: web-safe base64 of "1|<last key>|<checksum>". They are opaque to clients; the
// checksum catches tampering and truncation.
uint32_t TokenChecksum(std::string_view data) {
  uint32_t h = 2166136261u;
  for (unsigned char c : data) h = (h ^ c) * 16777619u;
  return h;
}

std::string MakePageToken(std::string_view last_key) {
  std::string body = StrCat("1|", last_key);
  return absl::WebSafeBase64Escape(StrCat(body, "|", TokenChecksum(body)));
}

absl::StatusOr<std::string> ParsePageToken(std::string_view token) {
  if (token.empty()) return std::string();
  std::string decoded;
  auto bad = [] {
    return InvalidField("page_token", "is not a token returned by ListAccountSummaries");
  };
  if (token.size() > 256 || !absl::WebSafeBase64Unescape(ToAbsl(token), &decoded)) return bad();
  size_t last_bar = decoded.rfind('|');
  if (last_bar == std::string::npos || decoded.compare(0, 2, "1|") != 0) return bad();
  std::string body = decoded.substr(0, last_bar);
  if (decoded.substr(last_bar + 1) != StrCat(TokenChecksum(body))) return bad();
  std::string key = body.substr(2);
  if (!ValidateAccountId("page_token", key).ok()) return bad();
  return key;
}

absl::Status ValidatePageSize(int32_t page_size) {
  if (page_size < 0 || page_size > kMaxPageSize) {
    return InvalidField("page_size",
                        StrCat("must be between 0 and ", kMaxPageSize, ", got ", page_size));
  }
  return absl::OkStatus();
}

// Tells the caller which build answered and how far it had applied the log.
void TagAnswer(grpc::ServerContext* context, const ProjectionRunner& runner) {
  context->AddTrailingMetadata("fidelis-projection-build", runner.build().ToString());
  context->AddTrailingMetadata("fidelis-projection-checkpoint", StrCat(runner.checkpoint()));
}

template <typename Row>
grpc::Status GetRow(const ProjectionEngine* engine, std::string_view projection,
                    grpc::ServerContext* context, const std::string& account_id,
                    uint64_t min_position, uint32_t version, Row* response) {
  absl::Status valid = ValidateAccountId("account_id", account_id);
  if (!valid.ok()) return ToGrpcStatus(valid);
  absl::StatusOr<std::shared_ptr<ProjectionRunner>> runner =
      engine->Readable(projection, version, min_position, CallDeadline(*context, kMaxQueryWait));
  if (!runner.ok()) return ToGrpcStatus(runner.status());
  TagAnswer(context, **runner);
  absl::StatusOr<std::optional<std::string>> row = (*runner)->store()->Get(account_id);
  if (!row.ok()) return ToGrpcStatus(row.status());
  if (!row->has_value()) {
    return ToGrpcStatus(absl::NotFoundError(StrCat("account ", account_id, " does not exist")));
  }
  if (!response->ParseFromString(**row)) {
    return ToGrpcStatus(absl::DataLossError(StrCat("row ", account_id, " does not parse")));
  }
  // A rebuild may have started while the row was read; never present such a row as complete.
  return ToGrpcStatus((*runner)->Availability());
}

}  // namespace

absl::Time CallDeadline(const grpc::ServerContextBase& context, absl::Duration cap) {
  absl::Time capped = cap == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + cap;
  auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return capped;
  return std::min(capped, absl::FromChrono(deadline));
}

grpc::ServerUnaryReactor* AccountCommandsService::OpenAccount(grpc::CallbackServerContext* context,
                                                              const grpc::ByteBuffer* request,
                                                              grpc::ByteBuffer* response) {
  return Serve<v1::OpenAccountRequest>(
      *auth_, kOpenAccount, context, request,
      [&](const v1::OpenAccountRequest& r, CommandContext ctx, grpc::ServerUnaryReactor* reactor) {
        RunOpen(*handler_, r, std::move(ctx), Answering(reactor, response));
      });
}

grpc::ServerUnaryReactor* AccountCommandsService::MakeDeposit(grpc::CallbackServerContext* context,
                                                              const grpc::ByteBuffer* request,
                                                              grpc::ByteBuffer* response) {
  return Serve<v1::MakeDepositRequest>(
      *auth_, kMakeDeposit, context, request,
      [&](const v1::MakeDepositRequest& r, CommandContext ctx, grpc::ServerUnaryReactor* reactor) {
        RunDeposit(*handler_, r, std::move(ctx), Answering(reactor, response));
      });
}

grpc::ServerUnaryReactor* AccountCommandsService::MakeWithdrawal(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Serve<v1::MakeWithdrawalRequest>(
      *auth_, kMakeWithdrawal, context, request,
      [&](const v1::MakeWithdrawalRequest& r, CommandContext ctx,
          grpc::ServerUnaryReactor* reactor) {
        RunWithdrawal(*handler_, r, std::move(ctx), Answering(reactor, response));
      });
}

grpc::ServerUnaryReactor* AccountCommandsService::CloseAccount(grpc::CallbackServerContext* context,
                                                               const grpc::ByteBuffer* request,
                                                               grpc::ByteBuffer* response) {
  return Serve<v1::CloseAccountRequest>(
      *auth_, kCloseAccount, context, request,
      [&](const v1::CloseAccountRequest& r, CommandContext ctx, grpc::ServerUnaryReactor* reactor) {
        RunClose(*handler_, r, std::move(ctx), Answering(reactor, response));
      });
}

grpc::ServerUnaryReactor* AccountCommandsService::TransferFunds(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Serve<v1::TransferFundsRequest>(
      *auth_, kTransferFunds, context, request,
      [&](const v1::TransferFundsRequest& r, CommandContext ctx,
          grpc::ServerUnaryReactor* reactor) {
        RunTransfer(*handler_, r, std::move(ctx),
                    [reactor, response](absl::StatusOr<TransferOutcome> outcome) {
                      if (!outcome.ok()) return reactor->Finish(ToGrpcStatus(outcome.status()));
                      v1::TransferFundsResponse answer;
                      FillTransfer(*outcome, &answer);
                      Reply(reactor, response, answer);
                    });
      });
}

grpc::ServerUnaryReactor* AccountCommandsService::ExecuteCommands(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto batch = std::make_unique<v1::ExecuteCommandsRequest>();
  absl::Status admitted = auth_->Check(*context, Scope::kClient);
  if (admitted.ok()) admitted = ParseRequest(*request, *batch);
  if (admitted.ok() &&
      (batch->commands_size() == 0 || batch->commands_size() > kMaxBatchCommands)) {
    admitted = InvalidField("commands", StrCat("a batch holds 1 to ", kMaxBatchCommands,
                                               " commands, got ", batch->commands_size()));
  }
  if (!admitted.ok()) {
    reactor->Finish(ToGrpcStatus(admitted));
    return reactor;
  }
  CommandBatch::Start(handler_, std::move(batch), CallDeadline(*context, absl::InfiniteDuration()),
                      reactor, response);
  return reactor;
}

grpc::ServerUnaryReactor* AccountCommandsService::Ping(grpc::CallbackServerContext* context,
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

grpc::Status AccountQueriesService::GetAccountSummary(grpc::ServerContext* context,
                                                      const v1::GetAccountSummaryRequest* request,
                                                      v1::AccountSummary* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  return GetRow(engine_, "AccountSummary", context, request->account_id(),
                request->min_global_position(), request->projection_version(), response);
}

grpc::Status AccountQueriesService::GetAccountReport(grpc::ServerContext* context,
                                                     const v1::GetAccountReportRequest* request,
                                                     v1::AccountReport* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  return GetRow(engine_, "AccountReport", context, request->account_id(),
                request->min_global_position(), request->projection_version(), response);
}

grpc::Status AccountQueriesService::GetLedgerTotals(grpc::ServerContext* context,
                                                    const v1::GetLedgerTotalsRequest* request,
                                                    v1::LedgerTotals* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  absl::StatusOr<std::shared_ptr<ProjectionRunner>> runner =
      engine_->Readable("LedgerTotals", request->projection_version(),
                        request->min_global_position(), CallDeadline(*context, kMaxQueryWait));
  if (!runner.ok()) return ToGrpcStatus(runner.status());
  TagAnswer(context, **runner);
  absl::Status parse_error;
  absl::Status scanned =
      (*runner)->store()->Scan("", SIZE_MAX, [&](std::string_view key, std::string_view value) {
        const bool ok = key.rfind("currency/", 0) == 0
                            ? response->add_currencies()->ParseFromArray(value.data(), value.size())
                            : response->add_days()->ParseFromArray(value.data(), value.size());
        if (!ok) parse_error = absl::DataLossError(StrCat("row ", key, " does not parse"));
        return ok;
      });
  if (!scanned.ok()) return ToGrpcStatus(scanned);
  if (!parse_error.ok()) return ToGrpcStatus(parse_error);
  return ToGrpcStatus((*runner)->Availability());
}

grpc::Status AccountQueriesService::ListAccountSummaries(
    grpc::ServerContext* context, const v1::ListAccountSummariesRequest* request,
    v1::ListAccountSummariesResponse* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  absl::Status valid = ValidatePageSize(request->page_size());
  if (!valid.ok()) return ToGrpcStatus(valid);
  absl::StatusOr<std::string> after = ParsePageToken(request->page_token());
  if (!after.ok()) return ToGrpcStatus(after.status());
  absl::StatusOr<std::shared_ptr<ProjectionRunner>> runner =
      engine_->Readable("AccountSummary", request->projection_version(),
                        request->min_global_position(), CallDeadline(*context, kMaxQueryWait));
  if (!runner.ok()) return ToGrpcStatus(runner.status());
  TagAnswer(context, **runner);
  const size_t page_size = request->page_size() == 0 ? kDefaultPageSize : request->page_size();
  absl::Status parse_error;
  std::string last_key;
  // Read one more than a page to know whether another page follows.
  absl::Status scanned = (*runner)->store()->Scan(
      *after, page_size + 1, [&](std::string_view key, std::string_view value) {
        if (static_cast<size_t>(response->accounts_size()) == page_size) {
          response->set_next_page_token(MakePageToken(last_key));
          return false;
        }
        if (!response->add_accounts()->ParseFromArray(value.data(),
                                                      static_cast<int>(value.size()))) {
          parse_error = absl::DataLossError(StrCat("row ", key, " does not parse"));
          return false;
        }
        last_key = std::string(key);
        return true;
      });
  if (!scanned.ok()) return ToGrpcStatus(scanned);
  if (!parse_error.ok()) return ToGrpcStatus(parse_error);
  return ToGrpcStatus((*runner)->Availability());
}

v1::RecordedEvent ToRecordedEvent(const v1::StoredEvent& event, const EventRegistry& registry) {
  v1::RecordedEvent out;
  out.set_global_position(event.global_position());
  out.set_stream_id(event.stream_id());
  out.set_category(std::string(CategoryOf(event.stream_id())));
  out.set_stream_version(event.stream_version());
  out.set_type(event.type());
  out.set_schema_version(event.schema_version());
  *out.mutable_timestamp() = TimeUtil::MicrosecondsToTimestamp(event.timestamp_micros());
  *out.mutable_metadata() = event.metadata();
  auto payload = registry.ParseAsStored(event.type(), event.schema_version(), event.payload());
  if (payload.ok()) {
    out.mutable_payload()->PackFrom(**payload);
  } else {
    // Unknown to this binary: keep the bytes under a type URL that says so.
    out.mutable_payload()->set_type_url(
        StrCat("type.googleapis.com/fidelis.unknown.", event.type()));
    out.mutable_payload()->set_value(event.payload());
  }
  return out;
}

grpc::Status EventLogService::ReadStream(grpc::ServerContext* context,
                                         const v1::ReadStreamRequest* request,
                                         v1::ReadStreamResponse* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  const std::string& stream = request->stream_id();
  if (stream.empty() || stream.size() > 256 || stream.find('\0') != std::string::npos) {
    return ToGrpcStatus(InvalidField("stream_id", "must be 1 to 256 bytes without NUL"));
  }
  if (request->from_version() < 0) {
    return ToGrpcStatus(InvalidField("from_version", "must not be negative"));
  }
  if (request->max_count() < 0 || request->max_count() > kMaxReadCount) {
    return ToGrpcStatus(InvalidField("max_count", StrCat("must be between 0 and ", kMaxReadCount)));
  }
  absl::StatusOr<int64_t> version = store_->StreamVersion(stream);
  if (!version.ok()) return ToGrpcStatus(version.status());
  if (*version == 0) {
    return ToGrpcStatus(absl::NotFoundError(StrCat("stream ", stream, " does not exist")));
  }
  const size_t max = request->max_count() == 0 ? kMaxReadCount : request->max_count();
  auto events = store_->ReadStream(stream, request->from_version(), max);
  if (!events.ok()) return ToGrpcStatus(events.status());
  for (const auto& event : *events) *response->add_events() = ToRecordedEvent(event, *registry_);
  response->set_stream_version(*version);
  return grpc::Status::OK;
}

grpc::Status EventLogService::ReadAll(grpc::ServerContext* context,
                                      const v1::ReadAllRequest* request,
                                      v1::ReadAllResponse* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  if (request->max_count() < 0 || request->max_count() > kMaxReadCount) {
    return ToGrpcStatus(InvalidField("max_count", StrCat("must be between 0 and ", kMaxReadCount)));
  }
  const size_t max = request->max_count() == 0 ? kMaxReadCount : request->max_count();
  response->set_head_position(store_->HeadPosition());
  absl::Status status =
      store_->Scan(request->from_position(), max, [&](const v1::StoredEvent& event) {
        *response->add_events() = ToRecordedEvent(event, *registry_);
        return true;
      });
  return ToGrpcStatus(status);
}

grpc::Status EventLogService::SubscribeAll(grpc::ServerContext* context,
                                           const v1::SubscribeAllRequest* request,
                                           grpc::ServerWriter<v1::RecordedEvent>* writer) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  uint64_t next = std::max<uint64_t>(request->from_position(), 1);
  while (!context->IsCancelled() && !stopping_->load()) {
    bool write_failed = false;
    uint64_t sent_up_to = next - 1;
    absl::Status status = store_->Scan(next, 256, [&](const v1::StoredEvent& event) {
      if (!writer->Write(ToRecordedEvent(event, *registry_))) {
        write_failed = true;
        return false;
      }
      sent_up_to = event.global_position();
      return true;
    });
    if (!status.ok()) return ToGrpcStatus(status);
    if (write_failed) return grpc::Status(grpc::StatusCode::CANCELLED, "subscriber went away");
    if (sent_up_to >= next) {
      next = sent_up_to + 1;
      continue;
    }
    // Caught up: follow live appends, waking regularly to notice cancellation and shutdown.
    store_->WaitForHead(next - 1, absl::Now() + absl::Milliseconds(200));
  }
  if (stopping_->load()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "subscription cancelled");
}

namespace {

v1::ProjectionBuild DescribeBuild(const ProjectionRunner& runner, uint64_t head) {
  v1::ProjectionBuild build;
  build.set_build(runner.build().ToString());
  build.set_version(runner.build().version);
  const uint64_t checkpoint = runner.checkpoint();
  build.set_checkpoint(checkpoint);
  build.set_lag(head > checkpoint ? head - checkpoint : 0);
  absl::Status available = runner.Availability();
  build.set_state(available.ok() ? "live" : std::string(available.message()));
  build.set_rebuild_id(runner.rebuild_id());
  return build;
}

v1::ProjectionInfo DescribeProjection(const ProjectionView& view, uint64_t head) {
  v1::ProjectionInfo info;
  info.set_name(view.name);
  *info.mutable_live() = DescribeBuild(*view.live, head);
  info.set_version(info.live().version());
  info.set_checkpoint(info.live().checkpoint());
  info.set_lag(info.live().lag());
  info.set_head_position(head);
  info.set_state(info.live().state());
  info.set_rebuild_id(info.live().rebuild_id());
  info.set_newest_version(view.newest_version);
  info.set_rebuild_needed(view.live->build().version != view.newest_version ||
                          !view.live->Availability().ok());
  if (view.shadow) {
    *info.mutable_shadow() = DescribeBuild(*view.shadow, head);
    if (info.shadow().rebuild_id().empty()) {
      info.mutable_shadow()->set_rebuild_id(view.shadow_rebuild_id);
    }
    if (info.shadow().state() == "live") {
      info.mutable_shadow()->set_state("caught up; following new events until promoted");
    }
  }
  if (view.previous) {
    *info.mutable_previous() = DescribeBuild(*view.previous, head);
    *info.mutable_previous()->mutable_retire_at() =
        google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(
            absl::ToUnixMicros(view.retire_at));
  }
  return info;
}

}  // namespace

grpc::Status ProjectionAdminService::ListProjections(grpc::ServerContext* context,
                                                     const v1::ListProjectionsRequest*,
                                                     v1::ListProjectionsResponse* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  const uint64_t head = store_->HeadPosition();
  for (const ProjectionView& view : engine_->Views()) {
    *response->add_projections() = DescribeProjection(view, head);
  }
  return grpc::Status::OK;
}

grpc::Status ProjectionAdminService::Describe(std::string_view projection,
                                              v1::ProjectionInfo* response) const {
  absl::StatusOr<ProjectionView> view = engine_->View(projection);
  if (!view.ok()) return ToGrpcStatus(view.status());
  *response = DescribeProjection(*view, store_->HeadPosition());
  return grpc::Status::OK;
}

grpc::Status ProjectionAdminService::PromoteProjection(grpc::ServerContext* context,
                                                       const v1::PromoteProjectionRequest* request,
                                                       v1::ProjectionInfo* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kAdmin); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  if (absl::Status done = engine_->Promote(request->projection()); !done.ok()) {
    return ToGrpcStatus(done);
  }
  return Describe(request->projection(), response);
}

grpc::Status ProjectionAdminService::AbortRebuild(grpc::ServerContext* context,
                                                  const v1::AbortRebuildRequest* request,
                                                  v1::ProjectionInfo* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kAdmin); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  if (absl::Status done = rebuilds_->Abort(request->projection()); !done.ok()) {
    return ToGrpcStatus(done);
  }
  return Describe(request->projection(), response);
}

grpc::Status ProjectionAdminService::RollbackProjection(
    grpc::ServerContext* context, const v1::RollbackProjectionRequest* request,
    v1::ProjectionInfo* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kAdmin); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  if (absl::Status done = engine_->Rollback(request->projection()); !done.ok()) {
    return ToGrpcStatus(done);
  }
  return Describe(request->projection(), response);
}

grpc::Status ProjectionAdminService::RetireProjection(grpc::ServerContext* context,
                                                      const v1::RetireProjectionRequest* request,
                                                      v1::ProjectionInfo* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kAdmin); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  if (absl::Status done = engine_->RetirePrevious(request->projection()); !done.ok()) {
    return ToGrpcStatus(done);
  }
  return Describe(request->projection(), response);
}

grpc::Status ProjectionAdminService::DiffProjection(grpc::ServerContext* context,
                                                    const v1::DiffProjectionRequest* request,
                                                    v1::DiffProjectionResponse* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kAdmin); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  if (request->max_differences() < 0 || request->max_differences() > 1000) {
    return ToGrpcStatus(InvalidField(
        "max_differences", StrCat("must be between 0 and 1000, got ", request->max_differences())));
  }
  for (auto [field, value] : {std::pair{"a", &request->a()}, std::pair{"b", &request->b()}}) {
    if (value->empty()) return ToGrpcStatus(InvalidField(field, "is required"));
  }
  absl::StatusOr<v1::DiffProjectionResponse> diff =
      engine_->Diff(request->projection(), request->a(), request->b(),
                    request->max_differences() == 0 ? 20 : request->max_differences());
  if (!diff.ok()) return ToGrpcStatus(diff.status());
  *response = std::move(*diff);
  return grpc::Status::OK;
}

grpc::Status ProjectionAdminService::StreamProgress(
    grpc::ServerContext* context, const RebuildJob& job,
    grpc::ServerWriter<v1::RebuildProgress>* writer) {
  constexpr absl::Duration kMinInterval = absl::Milliseconds(100);
  constexpr absl::Duration kMaxInterval = absl::Seconds(1);
  size_t phases_sent = 0;
  uint64_t seen = 0, sent_seq = 0;
  absl::Time last_sent = absl::InfinitePast();
  while (true) {
    if (context->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED,
                          StrCat("stopped watching; rebuild ", job.id(), " goes on"));
    }
    if (stopping_->load()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
    }
    const absl::Time heartbeat = last_sent + kMaxInterval;
    seen = job.WaitForUpdate(seen, std::min(heartbeat, absl::Now() + absl::Milliseconds(200)));
    std::vector<v1::RebuildProgress> changes = job.PhaseChanges(phases_sent);
    if (!changes.empty()) {
      for (const v1::RebuildProgress& change : changes) {
        if (!writer->Write(change)) {
          return grpc::Status(grpc::StatusCode::CANCELLED, "the watcher went away");
        }
        ++phases_sent;
        if (change.has_result()) return grpc::Status::OK;
      }
      last_sent = absl::Now();
      sent_seq = seen;
      continue;
    }
    const absl::Time now = absl::Now();
    if (now - last_sent >= kMinInterval && (seen != sent_seq || now >= heartbeat)) {
      if (!writer->Write(job.Progress())) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "the watcher went away");
      }
      last_sent = now;
      sent_seq = seen;
    } else if (now - last_sent < kMinInterval) {
      absl::SleepFor(kMinInterval - (now - last_sent));
    }
  }
}

grpc::Status ProjectionAdminService::RebuildProjection(
    grpc::ServerContext* context, const v1::RebuildProjectionRequest* request,
    grpc::ServerWriter<v1::RebuildProgress>* writer) {
  if (absl::Status denied = auth_->Check(*context, Scope::kAdmin); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  auto jobs = rebuilds_->Start(*request);
  if (!jobs.ok()) return ToGrpcStatus(jobs.status());
  for (const auto& job : *jobs) {
    grpc::Status status = StreamProgress(context, *job, writer);
    if (!status.ok()) return status;
  }
  return grpc::Status::OK;
}

grpc::Status ProjectionAdminService::WatchRebuild(grpc::ServerContext* context,
                                                  const v1::WatchRebuildRequest* request,
                                                  grpc::ServerWriter<v1::RebuildProgress>* writer) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  auto job = rebuilds_->Get(request->rebuild_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  return StreamProgress(context, **job, writer);
}

grpc::Status ProjectionAdminService::GetRebuild(grpc::ServerContext* context,
                                                const v1::GetRebuildRequest* request,
                                                v1::RebuildInfo* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  auto job = rebuilds_->Get(request->rebuild_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = (*job)->Info();
  return grpc::Status::OK;
}

grpc::Status ProjectionAdminService::ListRebuilds(grpc::ServerContext* context,
                                                  const v1::ListRebuildsRequest*,
                                                  v1::ListRebuildsResponse* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  for (const auto& job : rebuilds_->List()) *response->add_rebuilds() = job->Info();
  return grpc::Status::OK;
}

grpc::Status ProjectionAdminService::CancelRebuild(grpc::ServerContext* context,
                                                   const v1::CancelRebuildRequest* request,
                                                   v1::RebuildInfo* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kAdmin); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  auto job = rebuilds_->Get(request->rebuild_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  if ((*job)->finished()) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        StrCat("rebuild ", request->rebuild_id(), " has already finished")));
  }
  (*job)->Cancel();
  // Report the state once the job has stopped, so the caller sees CANCELLED (or the phase
  // it reached if it finished first).
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  for (uint64_t seen = 0; !(*job)->finished() && absl::Now() < deadline;) {
    seen = (*job)->WaitForUpdate(seen, deadline);
  }
  *response = (*job)->Info();
  return grpc::Status::OK;
}

}  // namespace fidelis::server
