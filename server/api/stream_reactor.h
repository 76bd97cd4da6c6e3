// StreamReactor: the shape of every server-streaming call (RebuildProjection, WatchRebuild,
// SubscribeAll), after gRPC's callback API.
//
// A stream is driven by what it follows (a rebuild job, the head of the log) and by timers,
// never by a thread of its own: the thing it follows calls Wake() from its own thread, which
// only schedules work; the work (Advance) runs on a gRPC thread, and at most one write is in
// flight. Every call ends with Finish, exactly once: when the subclass says so, when the client
// goes away (CANCELLED), or when the server shuts down (UNAVAILABLE, ServingState).
//
// Lifetime: gRPC owns the reactor until OnDone; it deletes itself there, or, when a timer is
// still pending, when that timer has fired (timers are never longer than a second or two).
// Subclasses release what they follow in Detach(), which OnDone calls first.
//
// Thread-safety: Wake() and End() may be called from any thread. Advance() and Detach() run
// on gRPC threads, never concurrently with each other.
#pragma once

#include <atomic>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "domain/clock.h"
#include "grpcpp/alarm.h"
#include "grpcpp/support/server_callback.h"
#include "server/api/serving_state.h"

namespace fidelis::server {

template <typename Message>
class StreamReactor : public grpc::ServerWriteReactor<Message>, private ShutdownListener {
 public:
  // Wakes the stream: Advance() runs soon on a gRPC thread. Quick; never blocks on the stream.
  void Wake() { ScheduleAdvance(absl::InfinitePast()); }

  // Ends the call with `status`, once (later calls do nothing). After a write in flight, if any.
  void End(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (ended_) return;
      ended_ = true;
      if (writing_) {
        pending_finish_ = std::move(status);
        return;
      }
    }
    this->Finish(std::move(status));
  }

 protected:
  // What Advance decided.
  struct Next {
    // A message to write (at most one write is in flight), or nothing for now.
    std::unique_ptr<Message> message;
    // With no message: end the call with this status.
    std::optional<grpc::Status> end;
    // With no message and no end: Advance again at this time even if nothing wakes the stream.
    absl::Time wake_at = absl::InfiniteFuture();
  };

  // `serving` and `clock` must outlive the reactor.
  StreamReactor(ServingState* serving, const Clock* clock) : serving_(serving), clock_(clock) {}

  // Registers for shutdown and runs the first Advance. Call at the end of the subclass's
  // constructor (or ends at once if the server is already stopping).
  void Begin() {
    if (!serving_->Subscribe(this)) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down"));
      return;
    }
    subscribed_ = true;
    Pump();
  }

  const Clock& clock() const { return *clock_; }

  // Decides the next step. Runs on a gRPC thread, one at a time, while no write is in flight.
  virtual Next Advance() = 0;
  // Stops following whatever calls Wake(). Runs once, in OnDone.
  virtual void Detach() = 0;

 private:
  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      written_.reset();
      if (pending_finish_) {
        finish = std::move(pending_finish_);
        pending_finish_.reset();
      } else if (!ok && !ended_) {
        ended_ = true;
        finish = grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      }
    }
    if (finish) return this->Finish(*std::move(finish));
    Pump();
  }

  void OnCancel() override {
    End(grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled"));
  }

  // Only wakes the stream: Finish must not run under the ServingState's lock, since gRPC may
  // run OnDone (which unsubscribes) before Finish returns.
  void OnShutdown() override { Wake(); }

  void OnDone() override {
    {
      // No Advance starts once ended_ is set; a timer's may still run: wait for it, so that
      // Detach never runs beside it.
      absl::MutexLock lock(&mu_);
      done_ = true;
      ended_ = true;
      mu_.Await(absl::Condition(
          +[](bool* advancing) { return !*advancing; }, &advancing_));
    }
    if (subscribed_) serving_->Unsubscribe(this);
    Detach();
    Release();  // gRPC's hold.
  }

  // Runs Advance until it has nothing to do, unless another thread does so or a write is in
  // flight (its completion pumps again).
  void Pump() {
    {
      absl::MutexLock lock(&mu_);
      if (ended_ || writing_) return;
      if (advancing_) {
        again_ = true;
        return;
      }
      advancing_ = true;
    }
    while (true) {
      Next next;
      if (serving_->stopping()) {
        next.end = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
      } else {
        next = Advance();
      }
      const Message* write = nullptr;
      std::optional<grpc::Status> finish;
      {
        absl::MutexLock lock(&mu_);
        if (ended_) {
          advancing_ = false;
          return;
        }
        if (next.message) {
          writing_ = true;
          written_ = std::move(next.message);
          write = written_.get();
        } else if (next.end) {
          ended_ = true;
          finish = std::move(next.end);
        } else if (again_) {
          again_ = false;
          continue;
        } else if (next.wake_at != absl::InfiniteFuture()) {
          ScheduleLocked(next.wake_at);
        }
        advancing_ = false;
      }
      // Outside the lock: the write may complete on another thread at once.
      if (write != nullptr) this->StartWrite(write);
      if (finish) this->Finish(*std::move(finish));
      return;
    }
  }

  // Advance at `at` (the past: as soon as possible), on a gRPC thread.
  void ScheduleAdvance(absl::Time at) {
    absl::MutexLock lock(&mu_);
    if (ended_) return;
    if (advancing_) {
      again_ = true;
      return;
    }
    if (writing_) return;  // The write's completion advances.
    ScheduleLocked(at);
  }

  // One timer at a time. An earlier wish than the pending timer's cancels it: a cancelled
  // timer fires at once (with ok false), which advances all the same. gRPC runs an alarm's
  // callback on its executor threads, never inside Set or Cancel, so both may run under mu_.
  void ScheduleLocked(absl::Time at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (timer_pending_) {
      if (at < timer_at_ && !timer_cancelled_) {
        timer_cancelled_ = true;
        timer_->Cancel();
      }
      return;
    }
    timer_pending_ = true;
    timer_cancelled_ = false;
    timer_at_ = at;
    refs_.fetch_add(1);
    // A fresh alarm each time: destroying one that has fired is safe, even from its callback.
    timer_ = std::make_unique<grpc::Alarm>();
    const absl::Duration wait = std::max(at - clock_->Now(), absl::ZeroDuration());
    timer_->Set(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(wait),
                [this](bool) { OnTimer(); });
  }

  void OnTimer() {
    bool done;
    {
      absl::MutexLock lock(&mu_);
      timer_pending_ = false;
      done = done_;
    }
    if (!done) Pump();
    Release();  // The timer's hold.
  }

  void Release() {
    if (refs_.fetch_sub(1) != 1) return;
    delete this;
  }

  ServingState* const serving_;
  const Clock* const clock_;
  bool subscribed_ = false;  // Set in Begin, read in OnDone.
  // Holds: gRPC's until OnDone, and one per pending timer.
  std::atomic<int> refs_{1};

  absl::Mutex mu_;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool advancing_ ABSL_GUARDED_BY(mu_) = false;
  bool again_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<Message> written_ ABSL_GUARDED_BY(mu_);
  std::optional<grpc::Status> pending_finish_ ABSL_GUARDED_BY(mu_);
  bool timer_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool timer_cancelled_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time timer_at_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Alarm> timer_ ABSL_GUARDED_BY(mu_);
};

// A stream refused before it starts (authentication, a bad request): finishes with `status`
// and deletes itself in OnDone.
template <typename Message>
class FinishedStream final : public grpc::ServerWriteReactor<Message> {
 public:
  explicit FinishedStream(grpc::Status status) { this->Finish(std::move(status)); }

 private:
  void OnDone() override { delete this; }
};

}  // namespace fidelis::server
