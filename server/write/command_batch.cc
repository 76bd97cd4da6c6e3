#include "server/write/command_batch.h"

#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "domain/errors.h"
#include "domain/strings.h"
#include "server/write/command_table.h"

namespace fidelis::server {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// One ExecuteCommands call in flight. Owns itself: it reports and deletes itself when the last
// of its commands has ended.
class CommandBatch {
 public:
  CommandBatch(CommandHandler* handler, std::unique_ptr<v1::ExecuteCommandsRequest> request,
               absl::Time deadline, BatchDone done)
      : handler_(handler),
        request_(std::move(request)),
        deadline_(deadline),
        done_(std::move(done)) {
    const size_t n = request_->commands_size();
    items_.resize(n);
    waiting_.assign(n, 0);
    next_.assign(n, {});
    // Held until Start has launched every command that can start, so that one ending at once
    // cannot report the batch first.
    remaining_ = n + 1;
    absl::flat_hash_map<std::string_view, size_t> last;  // Account -> its latest command.
    for (size_t i = 0; i < n; ++i) {
      const Message* command = CommandOf(i);
      const CommandRow* row = command ? FindCommandRow(command->GetDescriptor()) : nullptr;
      if (row == nullptr) continue;
      for (std::string_view account : row->Accounts(*command)) {
        auto [it, first] = last.try_emplace(account, i);
        if (first || it->second == i) continue;
        next_[it->second].push_back(i);
        ++waiting_[i];
        it->second = i;
      }
    }
  }

  void Start() {
    std::vector<size_t> ready;
    {
      absl::MutexLock lock(&mu_);
      for (size_t i = 0; i < waiting_.size(); ++i) {
        if (waiting_[i] == 0) ready.push_back(i);
      }
    }
    LaunchAll(std::move(ready));
    Release();  // The hold taken in the constructor.
  }

 private:
  // The request of command i (the message set in its oneof), or null when none is set.
  const Message* CommandOf(size_t i) const {
    const v1::BatchCommand& command = request_->commands(static_cast<int>(i));
    const FieldDescriptor* field =
        v1::BatchCommand::descriptor()->FindFieldByNumber(static_cast<int>(command.command_case()));
    if (field == nullptr) return nullptr;
    return &command.GetReflection()->GetMessage(command, field);
  }

  void Launch(size_t i) {
    const Message* command = CommandOf(i);
    const CommandRow* row = command ? FindCommandRow(command->GetDescriptor()) : nullptr;
    if (row == nullptr) {
      return End(i, InvalidField("command", "names no command (or one this server does not know)"));
    }
    row->Run(*handler_, *command, deadline_,
             [this, i](absl::StatusOr<std::unique_ptr<Message>> response) {
               if (!response.ok()) return End(i, response.status());
               End(i, absl::OkStatus(), *std::move(response));
             });
  }

  // Records command i's outcome, starts the commands that waited for it, and reports the batch
  // after the last one.
  void End(size_t i, const absl::Status& status, std::unique_ptr<Message> response = nullptr) {
    std::vector<size_t> ready;
    {
      absl::MutexLock lock(&mu_);
      items_[i].status = InItem(i, status);
      items_[i].response = std::move(response);
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
    const v1::BatchCommand& command = request_->commands(static_cast<int>(i));
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
    std::vector<BatchItem> items;
    {
      absl::MutexLock lock(&mu_);
      if (--remaining_ > 0) return;
      items.swap(items_);
    }
    std::move(done_)(std::move(items));
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
  BatchDone done_;
  // For each command, the commands that wait for it (at most one per account it names).
  std::vector<std::vector<size_t>> next_;

  absl::Mutex mu_;
  std::vector<BatchItem> items_ ABSL_GUARDED_BY(mu_);
  std::vector<int> waiting_ ABSL_GUARDED_BY(mu_);  // Commands each one still waits for.
  size_t remaining_ ABSL_GUARDED_BY(mu_);          // Commands not ended, plus Start's hold.
};

thread_local CommandBatch::Loop CommandBatch::running_;

}  // namespace

absl::Status ValidateBatch(const v1::ExecuteCommandsRequest& request) {
  if (request.commands_size() == 0 || request.commands_size() > kMaxBatchCommands) {
    return InvalidField("commands", StrCat("a batch holds 1 to ", kMaxBatchCommands,
                                           " commands, got ", request.commands_size()));
  }
  return absl::OkStatus();
}

void RunBatch(CommandHandler* handler, std::unique_ptr<v1::ExecuteCommandsRequest> request,
              absl::Time deadline, BatchDone done) {
  (new CommandBatch(handler, std::move(request), deadline, std::move(done)))->Start();
}

}  // namespace fidelis::server
