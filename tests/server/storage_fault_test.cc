// Storage faults: a file system that fails writes on demand (as a full or broken disk
// would), and a corrupt event record. Commands must fail with UNAVAILABLE and write nothing,
// reads must keep working, nothing half-written may appear, and after the fault clears and
// the server restarts writes work again with nothing lost. A corrupt record is DATA_LOSS
// naming its position, never a crash.
#include <atomic>
#include <thread>

#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "storage/key_format.h"
#include "tests/server/server_fixture.h"

namespace fidelis::testing {
namespace {

class FaultyFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultyFile(std::unique_ptr<rocksdb::FSWritableFile> file, const std::atomic<bool>* fail)
      : FSWritableFileOwnerWrapper(std::move(file)), fail_(fail) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    if (fail_->load()) return rocksdb::IOStatus::NoSpace("injected: no space left on device");
    return FSWritableFileOwnerWrapper::Append(data, options, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (fail_->load()) return rocksdb::IOStatus::NoSpace("injected: no space left on device");
    return FSWritableFileOwnerWrapper::Append(data, options, info, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (fail_->load()) return rocksdb::IOStatus::IOError("injected: I/O error on sync");
    return FSWritableFileOwnerWrapper::Sync(options, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    if (fail_->load()) return rocksdb::IOStatus::IOError("injected: I/O error on sync");
    return FSWritableFileOwnerWrapper::Fsync(options, dbg);
  }

 private:
  const std::atomic<bool>* fail_;
};

class FaultyFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultyFileSystem(const std::shared_ptr<rocksdb::FileSystem>& target)
      : FileSystemWrapper(target) {}
  const char* Name() const override { return "FaultyFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    if (fail.load()) return rocksdb::IOStatus::NoSpace("injected: no space left on device");
    rocksdb::IOStatus s = target()->NewWritableFile(name, options, result, dbg);
    if (s.ok()) result->reset(new FaultyFile(std::move(*result), &fail));
    return s;
  }

  std::atomic<bool> fail{false};
};

class StorageFaultTest : public ServerTest {
 protected:
  void SetUp() override {
    fs_ = std::make_shared<FaultyFileSystem>(rocksdb::FileSystem::Default());
    env_ = rocksdb::NewCompositeEnv(fs_);
    StartServer();
  }
  void Configure(server::ServerOptions& options) override { options.env = env_.get(); }

  std::shared_ptr<FaultyFileSystem> fs_;
  std::unique_ptr<rocksdb::Env> env_;
};

TEST_F(StorageFaultTest, AWriteFaultFailsCommandsKeepsReadsAndLosesNothing) {
  const std::string id = OpenOk("F1", 1000);
  v1::CommandResult result;
  ASSERT_TRUE(Deposit(id, 1, &result).ok());
  const uint64_t acknowledged = result.global_position();
  EXPECT_EQ(Summary(id, acknowledged).balance().minor_units(), 1001);

  fs_->fail.store(true);
  grpc::Status failed = Deposit(id, 5, &result);
  EXPECT_EQ(failed.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(failed.error_message().find("injected"), std::string::npos) << failed.error_message();
  EXPECT_EQ(Head(), acknowledged);  // Nothing half-written became visible.
  // Writes stay refused, even for other accounts, and the server stays up for reads.
  EXPECT_EQ(Open("F2", 0, &result).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Summary(id, acknowledged).balance().minor_units(), 1001);
  v1::ReadAllResponse all;
  ASSERT_TRUE(log_->ReadAll(Ctx().get(), {}, &all).ok());
  EXPECT_EQ(all.events_size(), static_cast<int>(acknowledged));

  fs_->fail.store(false);
  RestartServer();
  EXPECT_EQ(Head(), acknowledged);
  ASSERT_TRUE(Deposit(id, 5, &result).ok());
  EXPECT_EQ(result.global_position(), acknowledged + 1);
  EXPECT_EQ(Summary(id, result.global_position()).balance().minor_units(), 1006);
}

TEST_F(StorageFaultTest, ACorruptEventRecordIsDataLossNamingItsPosition) {
  const std::string id = OpenOk("F1", 1000);  // Positions 1 (opening) and 2 (reservation).
  v1::CommandResult result;
  ASSERT_TRUE(Deposit(id, 1, &result).ok());  // Position 3.
  StopServer();
  {
    auto db = storage::Database::Open(dir_.Sub("data"), {});
    ASSERT_OK(db);
    ASSERT_TRUE((*db)
                    ->db()
                    ->Put(rocksdb::WriteOptions(), (*db)->Family(storage::kEventsFamily),
                          storage::EventKey(3), "\xff\xfe not a record")
                    .ok());
  }
  StartServer();
  v1::ReadAllResponse all;
  grpc::Status status = log_->ReadAll(Ctx().get(), {}, &all);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_NE(status.error_message().find("global position 3"), std::string::npos)
      << status.error_message();
  v1::ReadStreamRequest read;
  read.set_stream_id("Account-" + id);
  v1::ReadStreamResponse stream;
  EXPECT_EQ(log_->ReadStream(Ctx().get(), read, &stream).error_code(), grpc::StatusCode::DATA_LOSS);
  v1::PingResponse pong;
  EXPECT_TRUE(commands_->Ping(Ctx().get(), {}, &pong).ok());  // Still serving.
  // A rebuild over the corrupt record fails and says where, without taking the server down.
  auto context = Ctx();
  v1::RebuildProjectionRequest request;
  request.set_projection("AccountReport");
  auto reader = admin_->RebuildProjection(context.get(), request);
  v1::RebuildProgress progress;
  while (reader->Read(&progress)) {
  }
  EXPECT_EQ(progress.phase(), v1::FAILED);
  EXPECT_NE(progress.result().failure().find("global position 3"), std::string::npos)
      << progress.result().failure();
  EXPECT_TRUE(commands_->Ping(Ctx().get(), {}, &pong).ok());
}

class OverloadTest : public ServerTest {
 protected:
  void Configure(server::ServerOptions& options) override { options.max_pending_appends = 1; }
};

TEST_F(OverloadTest, AFullWriterQueueRefusesCommandsQuicklyAndWritesNothingForThem) {
  const std::string id = OpenOk("O1", 0);
  const uint64_t before = Head();
  std::atomic<int> ok{0}, exhausted{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 64; ++i) {
    threads.emplace_back([&] {
      for (int n = 0; n < 5; ++n) {
        v1::CommandResult result;
        grpc::Status status = Deposit(id, 1, &result);
        if (status.ok()) {
          ++ok;
        } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
          ++exhausted;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GT(exhausted.load(), 0);
  EXPECT_GT(ok.load(), 0);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(Head(), before + ok.load());  // Refused commands wrote nothing.
  EXPECT_EQ(Summary(id, Head()).balance().minor_units(), ok.load());
}

class StreamLimitTest : public ServerTest {
 protected:
  void Configure(server::ServerOptions& options) override { options.max_concurrent_streams = 2; }
};

TEST_F(StreamLimitTest, AConnectionGetsNoMoreThanItsConcurrentStreams) {
  grpc::ClientContext first, second;
  auto a = log_->SubscribeAll(&first, v1::SubscribeAllRequest());
  auto b = log_->SubscribeAll(&second, v1::SubscribeAllRequest());
  absl::SleepFor(absl::Milliseconds(200));  // Both streams are open and idle.
  v1::PingResponse pong;
  // A third call on the same connection waits for a free stream.
  EXPECT_EQ(commands_->Ping(Ctx(absl::Milliseconds(500)).get(), {}, &pong).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  first.TryCancel();
  a->Finish();
  EXPECT_TRUE(commands_->Ping(Ctx().get(), {}, &pong).ok());
  second.TryCancel();
  b->Finish();
}

}  // namespace
}  // namespace fidelis::testing
