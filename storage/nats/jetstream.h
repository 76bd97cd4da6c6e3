// JetStreamLog: the log of record of a cluster, one JetStream stream, as the few operations
// NatsEventStore needs, over the NATS C client (libnats). It hides the C API: its ownership
// rules, its status codes and its JetStream error codes become RAII and absl::Status here.
//
// The stream holds one subject. Its first message is a marker (fidelis.v1.LogBatch with
// `marker` set) written when the stream is created, so that every append, the first included,
// can say which sequence it expects to follow: the C client reads an expected last sequence of
// 0 as "no expectation".
//
// Thread-safety: every method is thread-safe (libnats connections are). A Subscription is used
// by one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fidelis::storage::nats {

struct JetStreamOptions {
  // Server URLs, nats://host:port; the client connects to any and follows the cluster.
  std::vector<std::string> servers;
  std::string stream = "FIDELIS";
  std::string subject = "fidelis.log";
  // Copies JetStream keeps of each message (1 to 5; 3 survives the loss of any one server).
  int replicas = 1;
  // How long a request to JetStream (a publish's acknowledgement, stream information) may
  // take before it is UNAVAILABLE.
  absl::Duration request_timeout = absl::Seconds(2);
};

struct PubAck {
  uint64_t sequence = 0;
  // The stream already held a message with this message id (a re-publish): `sequence` is that
  // message's.
  bool duplicate = false;
};

// One message of the stream, as an ordered subscription delivers it.
struct StreamMessage {
  uint64_t sequence = 0;
  std::string data;
};

class JetStreamLog {
 public:
  // Connects to the servers (retrying in the background when none answers yet, so that a node
  // can start while NATS is down) and keeps reconnecting for as long as the log lives.
  // INVALID_ARGUMENT for unusable options.
  static absl::StatusOr<std::unique_ptr<JetStreamLog>> Connect(const JetStreamOptions& options);
  ~JetStreamLog();

  const JetStreamOptions& options() const { return options_; }

  // Whether the connection is up right now.
  bool connected() const;

  // Closes the connection for good, for an owner that is stopping: a request or a
  // Subscription::Next waiting on another thread returns UNAVAILABLE at once instead of at its
  // timeout, and so does every later call.
  void Close();

  // Creates the stream with its marker when it does not exist (two nodes racing to create it
  // leave one stream with one marker). UNAVAILABLE when NATS cannot be reached;
  // FAILED_PRECONDITION when a stream of that name exists with another subject.
  absl::Status EnsureStream();

  // The sequence of the stream's last message. UNAVAILABLE, NOT_FOUND (no such stream).
  absl::StatusOr<uint64_t> LastSequence();

  // The global position of the last event of the stream's newest batch (0 when it holds only
  // the marker). UNAVAILABLE, NOT_FOUND (no such stream), DATA_LOSS (not a log batch).
  absl::StatusOr<uint64_t> LastPosition();

  // Appends `data` if the stream's last sequence is `expect_last_sequence`. `message_id`
  // deduplicates a re-publish of the same batch (within JetStream's duplicate window). Returns
  // once JetStream has stored the message on a quorum of its replicas, or:
  //   ABORTED      the stream's last sequence is another one: someone else appended;
  //   UNAVAILABLE  no answer within the request timeout, or no connection; the message may
  //                or may not have been stored;
  //   INTERNAL     any other JetStream error.
  // A non-empty `expect_last_message_id` further requires that the stream's last message
  // carries that message id: a publish that follows another still in flight is then refused
  // (ABORTED) unless that one was stored.
  absl::StatusOr<PubAck> Publish(std::string_view data, uint64_t expect_last_sequence,
                                 const std::string& expect_last_message_id,
                                 const std::string& message_id);

  // Publish without waiting: the message goes out now, after every message published before
  // it on this log, and AwaitPublished(message_id) gives its answer, as Publish would. An
  // error here (no connection to write to, say) means it was not sent. Each message id is
  // awaited exactly once.
  absl::Status PublishAsync(std::string_view data, uint64_t expect_last_sequence,
                            const std::string& expect_last_message_id,
                            const std::string& message_id);
  absl::StatusOr<PubAck> AwaitPublished(const std::string& message_id);
  // Whether AwaitPublished(message_id) would answer at once.
  bool Answered(const std::string& message_id);
  // Called, on a libnats thread, each time an asynchronous publish is answered; null for none.
  // It must be quick and must not call this log.
  void SetAnswerListener(std::function<void()> listener);

  // Delivers the stream's messages in order from `start_sequence` on, and then each new one.
  class Subscription {
   public:
    virtual ~Subscription() = default;
    // The next message; NOT_FOUND when none arrives within `timeout`; UNAVAILABLE when the
    // subscription broke (subscribe again from the sequence after the last one received).
    virtual absl::StatusOr<StreamMessage> Next(absl::Duration timeout) = 0;
  };
  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(uint64_t start_sequence);

 private:
  struct Impl;
  explicit JetStreamLog(JetStreamOptions options);

  const JetStreamOptions options_;
  std::unique_ptr<Impl> impl_;
};

// Splits "nats://a:4222,nats://b:4222" into server URLs. INVALID_ARGUMENT when one is not a
// nats:// URL with a host and port.
absl::StatusOr<std::vector<std::string>> ParseServers(std::string_view list);

}  // namespace fidelis::storage::nats
