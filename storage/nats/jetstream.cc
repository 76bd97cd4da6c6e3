#include "storage/nats/jetstream.h"

#include <nats/nats.h>

#include <algorithm>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "fidelis/v1/events.pb.h"
#include "storage/steady_wait.h"

namespace fidelis::storage::nats {
namespace {

constexpr char kMarkerId[] = "fidelis-stream-marker";

int64_t Millis(absl::Duration d) { return std::max<int64_t>(1, absl::ToInt64Milliseconds(d)); }

// What libnats says went wrong, with its last error's detail.
std::string Describe(natsStatus status, jsErrCode code = static_cast<jsErrCode>(0)) {
  std::string text = natsStatus_GetText(status);
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0' && text.find(last) == std::string::npos) {
    text = StrCat(text, ": ", last);
  }
  if (code != 0) text = StrCat(text, " (JetStream error ", static_cast<int>(code), ")");
  return text;
}

bool Unreachable(natsStatus status) {
  return status == NATS_TIMEOUT || status == NATS_NO_RESPONDERS ||
         status == NATS_CONNECTION_CLOSED || status == NATS_CONNECTION_DISCONNECTED ||
         status == NATS_NOT_YET_CONNECTED || status == NATS_NO_SERVER ||
         status == NATS_STALE_CONNECTION || status == NATS_IO_ERROR;
}

absl::Status Failure(std::string_view what, natsStatus status,
                     jsErrCode code = static_cast<jsErrCode>(0)) {
  const std::string message = StrCat(what, ": ", Describe(status, code));
  if (Unreachable(status)) {
    return absl::UnavailableError(StrCat("NATS JetStream is unreachable (", message, ")"));
  }
  return absl::InternalError(message);
}

}  // namespace

struct JetStreamLog::Impl {
  natsOptions* options = nullptr;
  natsConnection* connection = nullptr;
  jsCtx* js = nullptr;
  // For PublishAsync: its acknowledgements go to OnAck.
  jsCtx* async_js = nullptr;

  // Answers of asynchronous publishes, by message id, until awaited.
  struct Answer {
    natsStatus status = NATS_OK;
    jsErrCode code = static_cast<jsErrCode>(0);
    std::string text;
    PubAck ack;
  };
  absl::Mutex mu;
  SteadyCondVar answered;
  absl::flat_hash_map<std::string, std::optional<Answer>> answers ABSL_GUARDED_BY(mu);
  std::function<void()> listener ABSL_GUARDED_BY(mu);

  // libnats' thread, for each asynchronous publish: its acknowledgement or its error (a
  // timeout included).
  static void OnAck(jsCtx* /*js*/, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    Impl* impl = static_cast<Impl*>(closure);
    const char* id = nullptr;
    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id != nullptr) {
      Answer answer;
      if (pa != nullptr) {
        answer.ack = PubAck{pa->Sequence, pa->Duplicate};
      } else if (pae != nullptr) {
        answer.status = pae->Err == NATS_OK ? NATS_ERR : pae->Err;
        answer.code = pae->ErrCode;
        if (pae->ErrText != nullptr) answer.text = pae->ErrText;
      }
      absl::MutexLock lock(&impl->mu);
      if (auto it = impl->answers.find(id); it != impl->answers.end()) {
        it->second = std::move(answer);
        impl->answered.SignalAll();
        if (impl->listener) impl->listener();
      }
    }
    natsMsg_Destroy(msg);
  }

  ~Impl() {
    if (async_js != nullptr) jsCtx_Destroy(async_js);
    if (js != nullptr) jsCtx_Destroy(js);
    if (connection != nullptr) {
      natsConnection_Close(connection);
      natsConnection_Destroy(connection);
    }
    if (options != nullptr) natsOptions_Destroy(options);
  }
};

absl::StatusOr<std::vector<std::string>> ParseServers(std::string_view list) {
  std::vector<std::string> servers;
  for (absl::string_view part : absl::StrSplit(ToAbsl(list), ',', absl::SkipWhitespace())) {
    std::string url(part);
    const size_t colon = url.rfind(':');
    if (url.rfind("nats://", 0) != 0 || colon == std::string::npos || colon < 8 ||
        colon + 1 == url.size()) {
      return absl::InvalidArgumentError(
          StrCat("'", url, "' is not a NATS server URL (nats://host:port)"));
    }
    servers.push_back(std::move(url));
  }
  if (servers.empty()) return absl::InvalidArgumentError("no NATS server URL given");
  return servers;
}

JetStreamLog::JetStreamLog(JetStreamOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}

JetStreamLog::~JetStreamLog() = default;

absl::StatusOr<std::unique_ptr<JetStreamLog>> JetStreamLog::Connect(
    const JetStreamOptions& options) {
  if (options.servers.empty()) return absl::InvalidArgumentError("no NATS server URL given");
  if (options.replicas < 1 || options.replicas > 5) {
    return absl::InvalidArgumentError(
        StrCat("the stream's replicas must be 1 to 5, got ", options.replicas));
  }
  std::unique_ptr<JetStreamLog> log(new JetStreamLog(options));
  Impl& impl = *log->impl_;
  natsStatus s = natsOptions_Create(&impl.options);
  std::vector<const char*> servers;
  for (const std::string& server : options.servers) servers.push_back(server.c_str());
  if (s == NATS_OK) {
    s = natsOptions_SetServers(impl.options, servers.data(), static_cast<int>(servers.size()));
  }
  // Reconnect for ever, quickly, and notice a server that stopped answering within seconds
  // (the default ping interval is two minutes).
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(impl.options, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(impl.options, 100);
  if (s == NATS_OK) s = natsOptions_SetTimeout(impl.options, Millis(options.request_timeout));
  if (s == NATS_OK) s = natsOptions_SetPingInterval(impl.options, 1000);
  if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(impl.options, 2);
  // A node may start while NATS is down: the connection keeps trying in the background. The
  // callback is what makes it the background: without one, natsConnection_Connect would block
  // until it connects, which with unlimited reconnects is for ever.
  if (s == NATS_OK) {
    s = natsOptions_SetRetryOnFailedConnect(
        impl.options, true, [](natsConnection* /*connection*/, void* /*closure*/) {}, nullptr);
  }
  if (s != NATS_OK) return Failure("configuring the NATS connection", s);
  s = natsConnection_Connect(&impl.connection, impl.options);
  if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
    return Failure("connecting to NATS", s);
  }
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = Millis(options.request_timeout);
  s = natsConnection_JetStream(&impl.js, impl.connection, &js_options);
  if (s != NATS_OK) return Failure("opening a JetStream context", s);
  js_options.PublishAsync.AckHandler = &Impl::OnAck;
  js_options.PublishAsync.AckHandlerClosure = &impl;
  s = natsConnection_JetStream(&impl.async_js, impl.connection, &js_options);
  if (s != NATS_OK) return Failure("opening a JetStream context", s);
  return log;
}

bool JetStreamLog::connected() const {
  return natsConnection_Status(impl_->connection) == NATS_CONN_STATUS_CONNECTED;
}

void JetStreamLog::Close() { natsConnection_Close(impl_->connection); }

absl::Status JetStreamLog::EnsureStream() {
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&info, impl_->js, options_.stream.c_str(), nullptr, &code);
  if (s == NATS_NOT_FOUND || code == JSStreamNotFoundErr) {
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = options_.stream.c_str();
    const char* subjects[] = {options_.subject.c_str()};
    config.Subjects = subjects;
    config.SubjectsLen = 1;
    config.Storage = js_FileStorage;
    config.Replicas = options_.replicas;
    code = static_cast<jsErrCode>(0);
    s = js_AddStream(&info, impl_->js, &config, nullptr, &code);
    if (s != NATS_OK && code == JSStreamNameExistErr) {
      // Another node created it first.
      code = static_cast<jsErrCode>(0);
      s = js_GetStreamInfo(&info, impl_->js, options_.stream.c_str(), nullptr, &code);
    }
  }
  if (s != NATS_OK) return Failure(StrCat("creating stream ", options_.stream), s, code);
  const bool ours = info->Config != nullptr && info->Config->SubjectsLen == 1 &&
                    options_.subject == info->Config->Subjects[0];
  const uint64_t last = info->State.LastSeq;
  jsStreamInfo_Destroy(info);
  if (!ours) {
    return absl::FailedPreconditionError(StrCat("stream ", options_.stream,
                                                " exists with other subjects than ",
                                                options_.subject, "; it is not a Fidelis log"));
  }
  if (last > 0) return absl::OkStatus();
  // A new stream: its marker, once, however many nodes race to write it.
  v1::LogBatch marker;
  marker.set_marker(true);
  const std::string data = marker.SerializeAsString();
  jsPubOptions publish;
  jsPubOptions_Init(&publish);
  publish.MsgId = kMarkerId;
  publish.ExpectNoMessage = true;
  publish.MaxWait = Millis(options_.request_timeout);
  jsPubAck* ack = nullptr;
  code = static_cast<jsErrCode>(0);
  s = js_Publish(&ack, impl_->js, options_.subject.c_str(), data.data(),
                 static_cast<int>(data.size()), &publish, &code);
  if (ack != nullptr) jsPubAck_Destroy(ack);
  // Refused as "not the first message": another node's marker is there.
  if (s != NATS_OK && code != JSStreamWrongLastSequenceErr) {
    return Failure("writing the stream's marker", s, code);
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> JetStreamLog::LastSequence() {
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&info, impl_->js, options_.stream.c_str(), nullptr, &code);
  if (s == NATS_NOT_FOUND || code == JSStreamNotFoundErr) {
    return absl::NotFoundError(StrCat("no stream ", options_.stream));
  }
  if (s != NATS_OK) return Failure(StrCat("reading stream ", options_.stream), s, code);
  const uint64_t last = info->State.LastSeq;
  jsStreamInfo_Destroy(info);
  return last;
}

absl::StatusOr<uint64_t> JetStreamLog::LastPosition() {
  natsMsg* msg = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetLastMsg(&msg, impl_->js, options_.stream.c_str(), options_.subject.c_str(),
                               nullptr, &code);
  if (s == NATS_NOT_FOUND || code == JSStreamNotFoundErr) {
    return absl::NotFoundError(StrCat("no stream ", options_.stream));
  }
  if (s != NATS_OK) return Failure(StrCat("reading stream ", options_.stream), s, code);
  v1::LogBatch batch;
  const bool parsed = batch.ParseFromArray(natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
  natsMsg_Destroy(msg);
  if (!parsed) {
    return absl::DataLossError(
        StrCat("the last message of ", options_.stream, " is not a Fidelis log batch"));
  }
  return batch.events().empty() ? 0 : batch.events(batch.events_size() - 1).global_position();
}

namespace {

void SetExpectations(jsPubOptions& publish, uint64_t expect_last_sequence,
                     const std::string& expect_last_message_id, const std::string& message_id,
                     absl::Duration timeout) {
  jsPubOptions_Init(&publish);
  publish.MsgId = message_id.c_str();
  publish.ExpectLastSeq = expect_last_sequence;
  if (!expect_last_message_id.empty()) publish.ExpectLastMsgId = expect_last_message_id.c_str();
  publish.MaxWait = Millis(timeout);
}

// A publish's answer: ABORTED when the stream is not where the publish expected it.
absl::StatusOr<PubAck> PublishOutcome(std::string_view what, natsStatus s, jsErrCode code,
                                      PubAck ack) {
  if (s == NATS_OK) return ack;
  if (code == JSStreamWrongLastSequenceErr || code == JSStreamWrongLastMsgIDErr) {
    return absl::AbortedError(
        StrCat(what, ": the stream is not where this node expected it: another node appended"));
  }
  return Failure(what, s, code);
}

}  // namespace

absl::StatusOr<PubAck> JetStreamLog::Publish(std::string_view data, uint64_t expect_last_sequence,
                                             const std::string& expect_last_message_id,
                                             const std::string& message_id) {
  jsPubOptions publish;
  SetExpectations(publish, expect_last_sequence, expect_last_message_id, message_id,
                  options_.request_timeout);
  jsPubAck* ack = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_Publish(&ack, impl_->js, options_.subject.c_str(), data.data(),
                            static_cast<int>(data.size()), &publish, &code);
  PubAck result;
  if (ack != nullptr) {
    result = PubAck{ack->Sequence, ack->Duplicate};
    jsPubAck_Destroy(ack);
  }
  return PublishOutcome(
      StrCat("appending to stream ", options_.stream, " after sequence ", expect_last_sequence), s,
      code, result);
}

absl::Status JetStreamLog::PublishAsync(std::string_view data, uint64_t expect_last_sequence,
                                        const std::string& expect_last_message_id,
                                        const std::string& message_id) {
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->answers[message_id].reset();
  }
  jsPubOptions publish;
  SetExpectations(publish, expect_last_sequence, expect_last_message_id, message_id,
                  options_.request_timeout);
  natsMsg* msg = nullptr;
  natsStatus s = natsMsg_Create(&msg, options_.subject.c_str(), nullptr, data.data(),
                                static_cast<int>(data.size()));
  if (s == NATS_OK) s = js_PublishMsgAsync(impl_->async_js, &msg, &publish);
  natsMsg_Destroy(msg);  // A no-op once libnats took it.
  if (s != NATS_OK) {
    absl::MutexLock lock(&impl_->mu);
    impl_->answers.erase(message_id);
    return Failure(StrCat("appending to stream ", options_.stream), s);
  }
  return absl::OkStatus();
}

bool JetStreamLog::Answered(const std::string& message_id) {
  absl::MutexLock lock(&impl_->mu);
  auto it = impl_->answers.find(message_id);
  return it == impl_->answers.end() || it->second.has_value();
}

void JetStreamLog::SetAnswerListener(std::function<void()> listener) {
  absl::MutexLock lock(&impl_->mu);
  impl_->listener = std::move(listener);
}

absl::StatusOr<PubAck> JetStreamLog::AwaitPublished(const std::string& message_id) {
  // libnats answers within the request timeout (with a timeout error at worst); this bounds
  // the wait should an answer never come.
  const SteadyTime until = SteadyAfter(options_.request_timeout + absl::Seconds(1));
  Impl::Answer answer;
  {
    absl::MutexLock lock(&impl_->mu);
    for (bool waiting = true;; waiting = impl_->answered.WaitUntil(&impl_->mu, until)) {
      auto it = impl_->answers.find(message_id);
      if (it == impl_->answers.end()) {
        return absl::InternalError(StrCat("no publish of message ", message_id, " to await"));
      }
      if (it->second.has_value()) {
        answer = *std::move(it->second);
        impl_->answers.erase(it);
        break;
      }
      if (!waiting) {
        impl_->answers.erase(it);
        return absl::UnavailableError(StrCat("NATS JetStream is unreachable (appending to stream ",
                                             options_.stream, ": no acknowledgement within ",
                                             absl::FormatDuration(options_.request_timeout), ")"));
      }
    }
  }
  const std::string what =
      answer.text.empty() ? StrCat("appending to stream ", options_.stream)
                          : StrCat("appending to stream ", options_.stream, " (", answer.text, ")");
  return PublishOutcome(what, answer.status, answer.code, answer.ack);
}

namespace {

class OrderedSubscription : public JetStreamLog::Subscription {
 public:
  explicit OrderedSubscription(natsSubscription* sub) : sub_(sub) {}
  ~OrderedSubscription() override {
    natsSubscription_Unsubscribe(sub_);
    natsSubscription_Destroy(sub_);
  }

  absl::StatusOr<StreamMessage> Next(absl::Duration timeout) override {
    natsMsg* msg = nullptr;
    natsStatus s = natsSubscription_NextMsg(&msg, sub_, Millis(timeout));
    if (s == NATS_TIMEOUT) return absl::NotFoundError("no new message");
    if (s != NATS_OK) return Failure("reading the stream", s);
    jsMsgMetaData* meta = nullptr;
    s = natsMsg_GetMetaData(&meta, msg);
    if (s != NATS_OK) {
      natsMsg_Destroy(msg);
      return Failure("reading a message's sequence", s);
    }
    StreamMessage out;
    out.sequence = meta->Sequence.Stream;
    out.data.assign(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
    jsMsgMetaData_Destroy(meta);
    natsMsg_Destroy(msg);
    return out;
  }

 private:
  natsSubscription* const sub_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<JetStreamLog::Subscription>> JetStreamLog::Subscribe(
    uint64_t start_sequence) {
  jsSubOptions sub_options;
  jsSubOptions_Init(&sub_options);
  sub_options.Stream = options_.stream.c_str();
  sub_options.Ordered = true;
  sub_options.Config.DeliverPolicy = js_DeliverByStartSequence;
  sub_options.Config.OptStartSeq = std::max<uint64_t>(start_sequence, 1);
  natsSubscription* sub = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s =
      js_SubscribeSync(&sub, impl_->js, options_.subject.c_str(), nullptr, &sub_options, &code);
  if (s != NATS_OK) return Failure(StrCat("subscribing to stream ", options_.stream), s, code);
  return std::unique_ptr<Subscription>(new OrderedSubscription(sub));
}

}  // namespace fidelis::storage::nats
