#include "storage/nats/nats_event_store.h"

#include <sys/prctl.h>

#include <chrono>
#include <optional>

#include "absl/time/clock.h"
#include "domain/ids.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "storage/log_batch.h"
#include "storage/thread_name.h"

namespace fidelis::storage::nats {
namespace {

// How often a replica that is catching up says how far it is.
constexpr absl::Duration kProgressInterval = absl::Seconds(5);
// How long a subscription may deliver nothing while the stream holds more before it is
// replaced: an ordered consumer lives on one NATS server, and one that is stopped (not
// disconnected) never says so.
constexpr absl::Duration kStallCheck = absl::Seconds(2);
// How long an append waits for a lost connection to NATS to come back before it gets
// UNAVAILABLE.
constexpr absl::Duration kDisconnectedGrace = absl::Seconds(2);
// Streams and command ids of the groups in flight the writer remembers before it lets the
// pipeline empty (which forgets them).
constexpr size_t kMaxRememberedInFlight = 1 << 16;

}  // namespace

struct NatsEventStore::Writer {
  Writer(AppendRequest r, AppendCallback d) : request(std::move(r)), done(std::move(d)) {}
  AppendRequest request;
  AppendCallback done;
  absl::StatusOr<AppendResult> result;
  int alias_of = -1;
};

// A group on its way to the log of record: published (or answered from state, when it appends
// nothing) and waiting for its answer. Writer thread only.
struct NatsEventStore::InFlight {
  std::vector<std::unique_ptr<Writer>> group;
  v1::LogBatch batch;
  std::string data;               // The batch, serialized.
  uint64_t expected = 0;          // The stream sequence it follows.
  std::string expect_message_id;  // The message id of the publish before it in flight, if any.
  std::string message_id;         // Its own; empty when nothing is published.
  uint64_t next_position = 0;     // The position after its batch.
  bool published = false;         // Whether it has a batch to publish.
  absl::Status send_error;        // Why its publish did not go out.
  SteadyTime deadline;
  std::chrono::steady_clock::time_point published_at;

  // Where the stream is once this group is stored.
  uint64_t after_sequence() const { return published ? expected + 1 : expected; }
  const std::string& after_message_id() const { return published ? message_id : expect_message_id; }
};

// Passes the replica's head movements on to this store's own listeners.
class NatsEventStore::Forwarder : public HeadListener {
 public:
  explicit Forwarder(NatsEventStore* store) : store_(store) {}
  void OnHeadAdvanced(uint64_t head) override { store_->NotifyHeadListeners(head); }

 private:
  NatsEventStore* const store_;
};

NatsEventStore::NatsEventStore(NatsEventStoreOptions options,
                               std::unique_ptr<RocksDbEventStore> replica,
                               std::unique_ptr<JetStreamLog> log)
    : options_(std::move(options)),
      node_id_(options_.node_id.empty() ? NewId().substr(0, 12) : options_.node_id),
      replica_(std::move(replica)),
      log_(std::move(log)) {}

absl::StatusOr<std::unique_ptr<NatsEventStore>> NatsEventStore::Open(
    Database* database, NatsEventStoreOptions options) {
  ASSIGN_OR_RETURN(std::unique_ptr<RocksDbEventStore> replica, RocksDbEventStore::Open(database));
  ASSIGN_OR_RETURN(std::unique_ptr<JetStreamLog> log, JetStreamLog::Connect(options.jetstream));
  std::unique_ptr<NatsEventStore> store(
      new NatsEventStore(std::move(options), std::move(replica), std::move(log)));
  store->forwarder_ = std::make_unique<Forwarder>(store.get());
  store->replica_->AddHeadListener(store->forwarder_.get());
  NatsEventStore* raw = store.get();
  store->log_->SetAnswerListener([raw] {
    absl::MutexLock lock(&raw->mu_);
    ++raw->answers_;
    raw->work_cv_.Signal();
  });
  store->replicator_ = std::thread([raw] {
    NameThisThread("fidelis-replica");
    raw->ReplicatorLoop();
  });
  store->writer_ = std::thread([raw] {
    NameThisThread("fidelis-log");
    raw->WriterLoop();
  });
  return store;
}

NatsEventStore::~NatsEventStore() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_cv_.Signal();
  }
  if (writer_.joinable()) writer_.join();
  log_->SetAnswerListener(nullptr);
  stop_replicator_.store(true);
  // The writer has answered everything; the replicator may be waiting on JetStream (for the
  // stream's last sequence, say, while NATS is down), which closing ends at once.
  log_->Close();
  if (replicator_.joinable()) replicator_.join();
  replica_->RemoveHeadListener(forwarder_.get());
}

void NatsEventStore::AppendAsync(AppendRequest request, AppendCallback done) {
  if (absl::Status valid = CheckAppendRequest(request); !valid.ok()) {
    std::move(done)(std::move(valid));
    return;
  }
  auto writer = std::make_unique<Writer>(std::move(request), std::move(done));
  if (std::this_thread::get_id() == writer_.get_id()) {
    // From a callback: ahead of the queue (see EventStore::AppendAsync).
    from_callbacks_.push_back(std::move(writer));
    pending_.fetch_add(1);
    return;
  }
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      refused = absl::UnavailableError("the event log is shutting down");
    } else if (queue_.size() >= options_.max_pending_appends) {
      refused = absl::ResourceExhaustedError(
          StrCat("the event log has ", queue_.size(), " appends waiting; retry with backoff"));
      if (options_.observer != nullptr) options_.observer->OnAppendRefused();
    } else {
      queue_.push_back(std::move(writer));
      pending_.fetch_add(1);
      work_cv_.Signal();
      return;
    }
  }
  std::move(writer->done)(std::move(refused));
}

void NatsEventStore::WriterLoop() {
  const size_t depth = std::max<size_t>(1, options_.max_publishes_in_flight);
  uint64_t answers_seen = 0;
  while (true) {
    // Answer, in order, the groups whose publishes were answered.
    while (!in_flight_.empty()) {
      const InFlight& oldest = in_flight_.front();
      const bool overdue = std::chrono::steady_clock::now() - oldest.published_at >
                           absl::ToChronoNanoseconds(options_.jetstream.request_timeout);
      if (oldest.published && !overdue && !log_->Answered(oldest.message_id)) break;
      FinishOldest();
    }
    std::vector<std::unique_ptr<Writer>> group;
    bool from_callbacks = false;
    if (in_flight_.size() < depth) {
      from_callbacks = !from_callbacks_.empty();
      group.swap(from_callbacks_);
      absl::MutexLock lock(&mu_);
      while (!queue_.empty() && group.size() < options_.max_group_size) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (!group.empty()) {
      // Appends started from callbacks are, mostly, commands decided again after a conflict,
      // on the state the groups answered so far left. Groups still in flight may change the
      // same streams again, and would refuse them again, and again: they go out once every
      // group before them is answered, as with one publish at a time, which they then
      // follow. A command id that a publish in flight carries is decided once that one is
      // answered. And what is remembered of the groups in flight is forgotten now and then.
      if (from_callbacks || RepeatsCommandInFlight(group) ||
          heads_in_flight_.size() > kMaxRememberedInFlight ||
          commands_in_flight_.size() > kMaxRememberedInFlight) {
        while (!in_flight_.empty()) FinishOldest();
      }
      StartGroup(std::move(group));
      continue;
    }
    absl::MutexLock lock(&mu_);
    if (in_flight_.empty()) {
      while (queue_.empty() && !stopping_) work_cv_.Wait(&mu_);
      if (queue_.empty()) return;  // Stopping, and everything is answered.
    } else {
      // Until new appends can go out, or a publish in flight is answered (or overdue).
      const SteadyTime until = SteadyAfter(absl::Milliseconds(100));
      while (answers_ == answers_seen && (queue_.empty() || in_flight_.size() >= depth)) {
        if (!work_cv_.WaitUntil(&mu_, until)) break;
      }
      answers_seen = answers_;
    }
  }
}

bool NatsEventStore::RepeatsCommandInFlight(const std::vector<std::unique_ptr<Writer>>& group) {
  if (in_flight_.empty()) return false;
  for (const std::unique_ptr<Writer>& w : group) {
    if (!w->request.command_id.empty() && commands_in_flight_.contains(w->request.command_id)) {
      return true;
    }
  }
  return false;
}

void NatsEventStore::AssembleLocked(InFlight& f) {
  BatchAssembler assembler(
      f.next_position,
      [this](const std::string& stream_id) -> absl::StatusOr<int64_t> {
        if (auto it = heads_in_flight_.find(stream_id); it != heads_in_flight_.end()) {
          return it->second;
        }
        return HeadLocked(stream_id);
      },
      [this](const std::string& id) { return replica_->FindCommand(id); }, &f.batch);
  for (std::unique_ptr<Writer>& w : f.group) {
    BatchAssembler::Outcome outcome = assembler.Add(w->request);
    w->result = std::move(outcome.result);
    w->alias_of = outcome.alias_of;
  }
  f.next_position = assembler.next_position();
}

void NatsEventStore::StartGroup(std::vector<std::unique_ptr<Writer>> group) {
  InFlight f;
  f.group = std::move(group);
  if (in_flight_.empty() && replica_->replicated_sequence() == 0) {
    // No marker yet: the serial path waits for it.
    CommitGroup(f);
    return Answer(f.group);
  }
  f.deadline = SteadyAfter(options_.publish_deadline);
  {
    absl::MutexLock lock(&apply_mu_);
    if (in_flight_.empty()) {
      f.expected = replica_->replicated_sequence();
      f.next_position = replica_->HeadPosition() + 1;
    } else {
      // After the groups in flight, as if they were stored: each publish names the one before
      // it, so it is refused unless that one was stored.
      const InFlight& last = in_flight_.back();
      f.expected = last.after_sequence();
      f.expect_message_id = last.after_message_id();
      f.next_position = last.next_position;
    }
    AssembleLocked(f);
  }
  for (const v1::StoredEvent& event : f.batch.events()) {
    heads_in_flight_[event.stream_id()] = event.stream_version();
  }
  for (const std::unique_ptr<Writer>& w : f.group) {
    if (!w->request.command_id.empty()) commands_in_flight_.insert(w->request.command_id);
  }
  f.published_at = std::chrono::steady_clock::now();
  if (!f.batch.events().empty()) {
    f.data = f.batch.SerializeAsString();
    f.message_id = StrCat(node_id_, "-", ++published_);
    f.published = true;
    if (!f.expect_message_id.empty()) chained_publishes_.fetch_add(1);
    f.send_error = log_->PublishAsync(f.data, f.expected, f.expect_message_id, f.message_id);
  }
  in_flight_.push_back(std::move(f));
}

void NatsEventStore::FinishOldest() {
  InFlight f = std::move(in_flight_.front());
  in_flight_.pop_front();
  if (f.published) {
    absl::StatusOr<PubAck> ack = f.send_error.ok() ? log_->AwaitPublished(f.message_id)
                                                   : absl::StatusOr<PubAck>(f.send_error);
    if (!ack.ok() && !absl::IsAborted(ack.status())) ack = PublishUntilAnswered(f, ack.status());
    if (absl::IsAborted(ack.status())) {
      refused_publishes_.fetch_add(1);
      return DecideAgain(std::move(f));
    }
    Stored(f, ack);
  }
  ResolveAliases(f.group);
  Answer(f.group);
  if (in_flight_.empty()) ForgetInFlight();
}

void NatsEventStore::DecideAgain(InFlight refused) {
  // Every group after the refused one named it: none of them was stored either. Collect their
  // answers, then decide each again, in order, on the replica once it has caught up.
  std::deque<InFlight> again;
  again.push_back(std::move(refused));
  while (!in_flight_.empty()) {
    InFlight& f = again.emplace_back(std::move(in_flight_.front()));
    in_flight_.pop_front();
    if (f.published && f.send_error.ok()) (void)log_->AwaitPublished(f.message_id);
  }
  ForgetInFlight();
  for (InFlight& f : again) {
    CommitGroup(f);
    Answer(f.group);
  }
}

void NatsEventStore::ForgetInFlight() {
  heads_in_flight_.clear();
  commands_in_flight_.clear();
}

absl::StatusOr<PubAck> NatsEventStore::PublishUntilAnswered(const InFlight& f,
                                                            absl::Status failed) {
  std::optional<absl::Time> disconnected_since;
  while (true) {
    // A connection that is down stays so for a while (every server gone): give up soon. A
    // connection that is up waits out a stream leader's election, up to the deadline.
    if (log_->connected()) {
      disconnected_since.reset();
    } else if (!disconnected_since) {
      disconnected_since = absl::Now();
    }
    if (std::chrono::steady_clock::now() >= f.deadline ||
        (disconnected_since && absl::Now() - *disconnected_since > kDisconnectedGrace)) {
      return absl::UnavailableError(StrCat(failed.message(),
                                           "; the commands may or may not have been appended: "
                                           "retry them with their command ids"));
    }
    absl::SleepFor(absl::Milliseconds(50));  // Reconnecting, or a stream leader is elected.
    // The same message: if the first was stored, this one is answered as its duplicate.
    absl::StatusOr<PubAck> ack =
        log_->Publish(f.data, f.expected, f.expect_message_id, f.message_id);
    if (ack.ok() || absl::IsAborted(ack.status())) return ack;
    failed = ack.status();
  }
}

void NatsEventStore::Stored(const InFlight& f, const absl::StatusOr<PubAck>& ack) {
  auto fail_all = [&](const absl::Status& status) {
    for (const std::unique_ptr<Writer>& w : f.group) w->result = status;
  };
  if (!ack.ok()) return fail_all(ack.status());
  if (options_.observer != nullptr) {
    options_.observer->OnGroupCommitted(
        f.group.size(), f.batch.events_size(),
        absl::FromChrono(std::chrono::steady_clock::now() - f.published_at));
  }
  absl::Status applied;
  {
    absl::MutexLock lock(&apply_mu_);
    if (replica_->replicated_sequence() + 1 == ack->sequence) {
      applied = ApplyLocked(f.batch, ack->sequence);
    }
  }
  const absl::Duration left = absl::FromChrono(f.deadline - std::chrono::steady_clock::now());
  if (applied.ok() &&
      !AwaitSequence(ack->sequence, std::max(left, absl::ZeroDuration()) + absl::Seconds(30))) {
    applied = absl::UnavailableError("the replica did not receive the appended batch in time");
  }
  if (!applied.ok()) {
    fail_all(absl::UnavailableError(StrCat(
        "appended to the log of record but not to this node's replica: ", applied.message())));
  }
}

void NatsEventStore::ResolveAliases(std::vector<std::unique_ptr<Writer>>& group) {
  for (std::unique_ptr<Writer>& w : group) {
    if (w->alias_of >= 0) {
      w->result = group[w->alias_of]->result;
      if (w->result.ok()) w->result->deduplicated = true;
    }
  }
}

void NatsEventStore::Answer(std::vector<std::unique_ptr<Writer>>& group) {
  // No longer pending once decided, before the answers: a caller that has its answer must not
  // find its own append still counted (callbacks that append count again).
  const bool drained = pending_.fetch_sub(group.size()) == group.size();
  for (std::unique_ptr<Writer>& w : group) std::move(w->done)(std::move(w->result));
  if (drained && drain_waiters_.load() > 0) {
    absl::MutexLock lock(&drain_mu_);
    drained_cv_.SignalAll();
  }
  group.clear();
}

void NatsEventStore::CommitGroup(InFlight& f) {
  f.deadline = SteadyAfter(options_.publish_deadline);
  auto remaining = [&] { return absl::FromChrono(f.deadline - std::chrono::steady_clock::now()); };
  auto fail_all = [&](const absl::Status& status) {
    for (std::unique_ptr<Writer>& w : f.group) w->result = status;
  };
  while (true) {
    // Until the replica holds the stream's marker, there is nothing to append after.
    if (replica_->replicated_sequence() == 0 && !AwaitSequence(1, remaining())) {
      return fail_all(absl::UnavailableError(
          StrCat("the event log of record (NATS JetStream stream ", options_.jetstream.stream,
                 ") cannot be reached; nothing was appended")));
    }
    f.expect_message_id.clear();  // Nothing is in flight to follow.
    {
      absl::MutexLock lock(&apply_mu_);
      f.expected = replica_->replicated_sequence();
      f.next_position = replica_->HeadPosition() + 1;
      AssembleLocked(f);  // On the replica alone.
    }
    if (f.batch.events_size() == 0) break;  // Every request was answered without an append.

    f.data = f.batch.SerializeAsString();
    f.message_id = StrCat(node_id_, "-", ++published_);
    f.published_at = std::chrono::steady_clock::now();
    absl::StatusOr<PubAck> ack =
        log_->Publish(f.data, f.expected, f.expect_message_id, f.message_id);
    if (!ack.ok() && !absl::IsAborted(ack.status())) ack = PublishUntilAnswered(f, ack.status());
    if (absl::IsAborted(ack.status())) {
      refused_publishes_.fetch_add(1);
      // Another node appended after the sequence this batch was assembled on: catch up, then
      // decide every request again on the new state.
      absl::StatusOr<uint64_t> last = log_->LastSequence();
      if (last.ok() && *last < f.expected) {
        // The stream ends before what this replica holds: it lost messages (every NATS
        // server lost power before syncing) or is another stream. Waiting will not help.
        return fail_all(absl::DataLossError(StrCat(
            "this node's replica holds stream sequence ", f.expected,
            " but the NATS JetStream "
            "stream ",
            options_.jetstream.stream, " ends at ", *last,
            ": the stream lost messages "
            "or is not the one this replica was copied from; rebuild the replica (start the node "
            "with an empty --data_dir); nothing was appended")));
      }
      if (last.ok()) AwaitSequence(*last, remaining());
      if (remaining() <= absl::ZeroDuration()) {
        return fail_all(absl::UnavailableError(
            "the event log kept moving ahead of this node; nothing was appended"));
      }
      continue;
    }
    Stored(f, ack);
    break;
  }
  ResolveAliases(f.group);
}

absl::StatusOr<int64_t> NatsEventStore::HeadLocked(const std::string& stream_id) {
  apply_mu_.AssertHeld();
  if (auto it = heads_.find(stream_id); it != heads_.end()) return it->second;
  ASSIGN_OR_RETURN(int64_t version, replica_->StreamVersion(stream_id));
  if (heads_.size() >= (1u << 20)) heads_.clear();  // A cache, not the truth: bound it.
  heads_.emplace(stream_id, version);
  return version;
}

absl::Status NatsEventStore::ApplyLocked(const v1::LogBatch& batch, uint64_t sequence) {
  const uint64_t current = replica_->replicated_sequence();
  if (sequence <= current) return absl::OkStatus();  // Applied already.
  if (sequence != current + 1) {
    return absl::DataLossError(
        StrCat("the stream delivered sequence ", sequence, " after the replica's ", current));
  }
  RETURN_IF_ERROR(replica_->ApplyReplicated(batch, sequence));
  for (const v1::StoredEvent& event : batch.events()) {
    if (auto it = heads_.find(event.stream_id()); it != heads_.end()) {
      it->second = event.stream_version();
    }
  }
  absl::MutexLock lock(&applied_mu_);
  applied_cv_.SignalAll();
  return absl::OkStatus();
}

bool NatsEventStore::AwaitSequence(uint64_t sequence, absl::Duration timeout) const {
  const SteadyTime until = SteadyAfter(timeout);
  absl::MutexLock lock(&applied_mu_);
  while (replica_->replicated_sequence() < sequence) {
    if (!applied_cv_.WaitUntil(&applied_mu_, until)) break;
  }
  return replica_->replicated_sequence() >= sequence;
}

void NatsEventStore::ReplicatorLoop() {
  std::unique_ptr<JetStreamLog::Subscription> subscription;
  uint64_t target = 0;  // The stream's last sequence when this node first reached it.
  const absl::Time started = absl::Now();
  const uint64_t start_position = replica_->HeadPosition();
  absl::Time last_report = started;
  absl::Status last_error;
  // At the last stall check: whether the stream was ahead of the replica, and of which
  // sequence; and when that check was.
  constexpr uint64_t kNotBehind = UINT64_MAX;
  uint64_t behind_at = kNotBehind;
  absl::Time last_check = started;
  while (!stop_replicator_.load()) {
    if (!caught_up_.load() && target > 0 && replica_->replicated_sequence() >= target) {
      const double seconds = absl::ToDoubleSeconds(absl::Now() - started);
      const uint64_t copied = replica_->HeadPosition() - start_position;
      std::fprintf(stderr,
                   "fidelis-replica: caught up with the stream at head position %llu: copied %llu "
                   "events in %.3f s (%.0f events/s)\n",
                   static_cast<unsigned long long>(replica_->HeadPosition()),
                   static_cast<unsigned long long>(copied), seconds,
                   seconds > 0 ? copied / seconds : 0.0);
      caught_up_.store(true);
      absl::MutexLock lock(&applied_mu_);
      applied_cv_.SignalAll();
    }
    if (subscription == nullptr) {
      absl::Status ready = log_->EnsureStream();
      absl::StatusOr<uint64_t> last = ready.ok() ? log_->LastSequence() : ready;
      absl::StatusOr<std::unique_ptr<JetStreamLog::Subscription>> subscribed =
          last.ok() ? log_->Subscribe(replica_->replicated_sequence() + 1) : last.status();
      if (!subscribed.ok()) {
        if (stop_replicator_.load()) return;
        if (subscribed.status() != last_error) {
          std::fprintf(stderr, "fidelis-replica: %s; retrying\n",
                       subscribed.status().ToString().c_str());
          last_error = subscribed.status();
        }
        absl::SleepFor(absl::Milliseconds(250));
        continue;
      }
      last_error = absl::OkStatus();
      if (target == 0) target = std::max<uint64_t>(*last, 1);
      subscription = *std::move(subscribed);
      continue;
    }
    absl::StatusOr<StreamMessage> message = subscription->Next(absl::Milliseconds(200));
    if (absl::IsNotFound(message.status())) {
      if (absl::Now() - last_check < kStallCheck) continue;
      last_check = absl::Now();
      const uint64_t have = replica_->replicated_sequence();
      absl::StatusOr<uint64_t> last = log_->LastSequence();
      if (!last.ok() || *last <= have) {
        behind_at = kNotBehind;
        continue;
      }
      // Behind at two checks in a row with nothing delivered between them: stalled.
      const bool stalled = behind_at == have;
      behind_at = have;
      if (stalled) {
        behind_at = kNotBehind;
        std::fprintf(stderr,
                     "fidelis-replica: the stream holds sequence %llu but nothing after %llu "
                     "arrived for %.0f s or more; following the stream again\n",
                     static_cast<unsigned long long>(*last), static_cast<unsigned long long>(have),
                     absl::ToDoubleSeconds(kStallCheck));
        subscription.reset();
      }
      continue;
    }
    absl::Status applied = message.status();
    if (applied.ok() && message->sequence <= replica_->replicated_sequence()) {
      continue;  // This node's own batch, which its writer applied already: not parsed again.
    }
    if (applied.ok()) {
      v1::LogBatch batch;
      if (!batch.ParseFromString(message->data)) {
        applied = absl::DataLossError(
            StrCat("stream message ", message->sequence, " is not a Fidelis log batch"));
      } else {
        absl::MutexLock lock(&apply_mu_);
        applied = ApplyLocked(batch, message->sequence);
      }
    }
    if (!applied.ok()) {
      if (stop_replicator_.load()) return;  // The store closed the connection to stop.
      // Follow again from the sequence after the replica's.
      std::fprintf(stderr, "fidelis-replica: %s; following the stream again\n",
                   applied.ToString().c_str());
      subscription.reset();
      absl::SleepFor(absl::Milliseconds(100));
      continue;
    }
    if (!caught_up_.load() && absl::Now() - last_report >= kProgressInterval) {
      last_report = absl::Now();
      std::fprintf(stderr,
                   "fidelis-replica: building the replica: stream sequence %llu of %llu, head "
                   "position %llu\n",
                   static_cast<unsigned long long>(replica_->replicated_sequence()),
                   static_cast<unsigned long long>(target),
                   static_cast<unsigned long long>(replica_->HeadPosition()));
    }
  }
}

bool NatsEventStore::WaitUntilReady(absl::Duration timeout) const {
  const SteadyTime until = SteadyAfter(timeout);
  absl::MutexLock lock(&applied_mu_);
  while (!caught_up_.load()) {
    if (!applied_cv_.WaitUntil(&applied_mu_, until)) break;
  }
  return caught_up_.load();
}

absl::Status NatsEventStore::AwaitPosition(uint64_t position, absl::Duration timeout) const {
  const SteadyTime until = SteadyAfter(timeout);
  uint64_t head = replica_->HeadPosition();
  bool asked = false;
  while (head < position) {
    if (!asked && log_->connected()) {
      // Does the log of record hold it at all? Asked once, even with no time to wait, so that
      // a position beyond the log is refused at once rather than waited for.
      asked = true;
      absl::StatusOr<uint64_t> newest = log_->LastPosition();
      if (newest.ok() && *newest < position) {
        return absl::OutOfRangeError(
            StrCat(position, " is beyond the head of the log (", std::max(*newest, head), ")"));
      }
    }
    if (std::chrono::steady_clock::now() >= until) {
      return absl::DeadlineExceededError(
          StrCat("this node's replica of the log holds positions up to ", head, ", not yet ",
                 position, ", by the call's deadline"));
    }
    head = replica_->WaitForHead(head, absl::Milliseconds(50));
  }
  return absl::OkStatus();
}

absl::Status NatsEventStore::CatchUp(absl::Duration timeout) const {
  absl::StatusOr<uint64_t> last = log_->LastSequence();
  if (!last.ok()) {
    return absl::UnavailableError(
        StrCat("the NATS JetStream stream ", options_.jetstream.stream,
               " cannot be asked how far it goes: ", last.status().message()));
  }
  if (!AwaitSequence(*last, timeout)) {
    return absl::DeadlineExceededError(StrCat(
        "this node's replica holds stream sequence ", replica_->replicated_sequence(),
        " and did not get to the stream's ", *last, " within ", absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<v1::CommandRecord>> NatsEventStore::FindCommand(
    std::string_view command_id) const {
  return replica_->FindCommand(command_id);
}

absl::StatusOr<std::vector<v1::StoredEvent>> NatsEventStore::ReadStream(std::string_view stream_id,
                                                                        int64_t from_version,
                                                                        size_t max_count) const {
  return replica_->ReadStream(stream_id, from_version, max_count);
}

absl::StatusOr<int64_t> NatsEventStore::StreamVersion(std::string_view stream_id) const {
  return replica_->StreamVersion(stream_id);
}

absl::Status NatsEventStore::Scan(uint64_t from_position, size_t max_count,
                                  const std::function<bool(const v1::StoredEvent&)>& visit) const {
  return replica_->Scan(from_position, max_count, visit);
}

absl::Status NatsEventStore::ScanRaw(
    uint64_t from_position, size_t max_count,
    const std::function<bool(uint64_t, std::string_view)>& visit) const {
  return replica_->ScanRaw(from_position, max_count, visit);
}

uint64_t NatsEventStore::WaitForHead(uint64_t after_position, absl::Duration timeout) const {
  return replica_->WaitForHead(after_position, timeout);
}

bool NatsEventStore::WaitUntilNoPendingAppends(absl::Duration timeout) const {
  if (pending_.load() == 0) return true;
  const SteadyTime until = SteadyAfter(timeout);
  drain_waiters_.fetch_add(1);
  {
    absl::MutexLock lock(&drain_mu_);
    while (pending_.load() > 0 && drained_cv_.WaitUntil(&drain_mu_, until)) {
    }
  }
  drain_waiters_.fetch_sub(1);
  return pending_.load() == 0;
}

}  // namespace fidelis::storage::nats
