#include "storage/event_record.h"

#include <cstdio>
#include <random>
#include <string>

#include "fidelis/v1/events.pb.h"
#include "gtest/gtest.h"

namespace fidelis::storage {
namespace {

v1::StoredEvent SampleEvent() {
  v1::StoredEvent event;
  event.set_global_position(1234567890123);
  event.set_stream_id("Account-6f1c2b1e-93a4-4f51-bd6e-0a4f3c2d1e0f");
  event.set_stream_version(-3);  // Never negative in the log; checks the varint round trip.
  event.set_type("DepositMade");
  event.set_schema_version(2);
  event.set_timestamp_micros(1732406400123456);
  event.set_payload(
      std::string("\x0a\x03"
                  "abc\x12\x05\x08\x96\x01\x10\x02",
                  12));
  event.mutable_metadata()->set_command_id("cmd-1");
  event.mutable_metadata()->set_correlation_id("corr-1");
  return event;
}

std::string Hex(const std::string& bytes) {
  std::string out;
  char buf[4];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof(buf), "%02x ", c);
    out += buf;
  }
  return out;
}

// Parses `bytes` both ways; expects the same verdict and, when both accept, the same fields.
void ExpectSameAsMessageParser(const std::string& bytes) {
  v1::StoredEvent message;
  const bool message_ok = message.ParseFromString(bytes);
  EventRecord record;
  const bool record_ok = ParseEventRecord(bytes, &record);
  ASSERT_EQ(record_ok, message_ok) << "bytes: " << Hex(bytes);
  if (!message_ok) return;
  const EventRecord expected = RecordOf(message);
  EXPECT_EQ(record.global_position, expected.global_position);
  EXPECT_EQ(record.stream_id, expected.stream_id);
  EXPECT_EQ(record.stream_version, expected.stream_version);
  EXPECT_EQ(record.type, expected.type);
  EXPECT_EQ(record.schema_version, expected.schema_version);
  EXPECT_EQ(record.timestamp_micros, expected.timestamp_micros);
  EXPECT_EQ(record.payload, expected.payload);
}

// The envelope of SampleEvent(), spelled out.
void ExpectSampleEnvelope(const EventRecord& record) {
  EXPECT_EQ(record.global_position, 1234567890123u);
  EXPECT_EQ(record.stream_id, "Account-6f1c2b1e-93a4-4f51-bd6e-0a4f3c2d1e0f");
  EXPECT_EQ(record.stream_version, -3);
  EXPECT_EQ(record.type, "DepositMade");
  EXPECT_EQ(record.schema_version, 2u);
  EXPECT_EQ(record.timestamp_micros, 1732406400123456);
}

TEST(EventRecordTest, RecordOfViewsAParsedMessage) {
  const v1::StoredEvent event = SampleEvent();
  const EventRecord record = RecordOf(event);
  ExpectSampleEnvelope(record);
  EXPECT_EQ(record.payload.data(), event.payload().data());
}

TEST(EventRecordTest, ReadsEveryEnvelopeFieldWithoutCopying) {
  const std::string bytes = SampleEvent().SerializeAsString();
  EventRecord record;
  ASSERT_TRUE(ParseEventRecord(bytes, &record));
  ExpectSampleEnvelope(record);
  EXPECT_EQ(record.payload, SampleEvent().payload());
  // Views into the parsed bytes.
  EXPECT_GE(record.stream_id.data(), bytes.data());
  EXPECT_LT(record.payload.data(), bytes.data() + bytes.size());
}

TEST(EventRecordTest, EmptyBytesAreAnEmptyEvent) {
  EventRecord record;
  record.global_position = 9;
  ASSERT_TRUE(ParseEventRecord("", &record));
  EXPECT_EQ(record.global_position, 0u);
  EXPECT_TRUE(record.type.empty());
}

TEST(EventRecordTest, LaterFieldsWinAndUnknownFieldsAreSkipped) {
  v1::StoredEvent later;
  later.set_type("WithdrawalMade");
  later.set_global_position(7);
  // Unknown fields of every wire type, and known field numbers with the wrong wire type.
  std::string unknown;
  unknown += std::string("\x48\x05", 2);                       // 9: varint
  unknown += std::string("\x51", 1) + std::string(8, '\x01');  // 10: fixed64
  unknown += std::string("\x5d", 1) + std::string(4, '\x02');  // 11: fixed32
  unknown += std::string("\x62\x02xy", 4);                     // 12: bytes
  unknown += std::string("\x0d", 1) + std::string(4, '\x03');  // 1 as fixed32
  unknown += std::string("\x10\x05", 2);                       // 2 as varint
  const std::string bytes = SampleEvent().SerializeAsString() + unknown + later.SerializeAsString();
  ExpectSameAsMessageParser(bytes);
  EventRecord record;
  ASSERT_TRUE(ParseEventRecord(bytes, &record));
  EXPECT_EQ(record.type, "WithdrawalMade");
  EXPECT_EQ(record.global_position, 7u);
}

TEST(EventRecordTest, RefusesWhatTheMessageParserRefuses) {
  v1::StoredEvent bad_utf8 = SampleEvent();
  bad_utf8.set_stream_id("Account-\xff");
  v1::StoredEvent bad_metadata = SampleEvent();
  bad_metadata.mutable_metadata()->set_causation_id("\xc3(");
  for (const v1::StoredEvent& event : {bad_utf8, bad_metadata}) {
    std::string bytes;
    ASSERT_TRUE(event.SerializePartialToString(&bytes));
    EventRecord record;
    EXPECT_FALSE(ParseEventRecord(bytes, &record));
    ExpectSameAsMessageParser(bytes);
  }
  EventRecord record;
  EXPECT_FALSE(ParseEventRecord(std::string("\x00\x01", 2), &record));  // Field 0.
  EXPECT_FALSE(ParseEventRecord("\x0b", &record));                      // A group start.
}

TEST(EventRecordTest, ChecksUtf8InEveryPartOfAString) {
  // ASCII is checked eight bytes at a time, then byte by byte: a bad byte must be found in
  // either part, and valid multi-byte text must still pass.
  const std::string ascii = "Account-0123456789abcdef";  // 24 bytes.
  for (size_t at = 0; at <= ascii.size(); ++at) {
    for (const char* insert : {"\xff", "\xc3(", "\xc3\xa9", "\xe2\x82\xac"}) {
      v1::StoredEvent event = SampleEvent();
      event.set_stream_id(ascii.substr(0, at) + insert + ascii.substr(at));
      event.mutable_metadata()->set_correlation_id(ascii.substr(at) + insert);
      std::string bytes;
      ASSERT_TRUE(event.SerializePartialToString(&bytes));
      EventRecord record;
      const bool valid = insert[0] == '\xc3' ? insert[1] == '\xa9' : insert[0] == '\xe2';
      EXPECT_EQ(ParseEventRecord(bytes, &record), valid) << at << " " << insert;
      ExpectSameAsMessageParser(bytes);
    }
  }
}

TEST(EventRecordTest, AgreesWithTheMessageParserOnEveryTruncation) {
  const std::string bytes = SampleEvent().SerializeAsString();
  for (size_t size = 0; size <= bytes.size(); ++size) {
    ExpectSameAsMessageParser(bytes.substr(0, size));
  }
}

TEST(EventRecordTest, AgreesWithTheMessageParserOnCorruptedRecords) {
  const std::string bytes = SampleEvent().SerializeAsString();
  std::mt19937 random(20261124);
  int refused = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string corrupt = bytes;
    const int flips = 1 + static_cast<int>(random() % 3);
    for (int i = 0; i < flips; ++i) {
      corrupt[random() % corrupt.size()] = static_cast<char>(random() & 0xff);
    }
    v1::StoredEvent message;
    if (!message.ParseFromString(corrupt)) ++refused;
    ExpectSameAsMessageParser(corrupt);
    if (HasFatalFailure()) return;
  }
  // The corruptions reach both verdicts, so the agreement means something.
  EXPECT_GT(refused, 100);
  EXPECT_LT(refused, 19900);
}

}  // namespace
}  // namespace fidelis::storage
