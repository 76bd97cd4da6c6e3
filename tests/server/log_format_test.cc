#include "server/log_format.h"

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace fidelis::server {
namespace {

google::protobuf::Struct Parse(const std::string& line) {
  google::protobuf::Struct parsed;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(line, &parsed).ok()) << line;
  return parsed;
}

TEST(JsonLogFormatterTest, TrailingFieldsBecomeMembers) {
  const std::string line = JsonLogLine(
      "2026-12-04T21:00:00.000001Z", "info", 42,
      "rebuild r-1 of AccountSummary DONE in 1.5s [projection=AccountSummary rebuild_id=r-1 "
      "events=1200]");
  ASSERT_EQ(line.back(), '\n');
  const google::protobuf::Struct s = Parse(line);
  EXPECT_EQ(s.fields().at("message").string_value(), "rebuild r-1 of AccountSummary DONE in 1.5s");
  EXPECT_EQ(s.fields().at("projection").string_value(), "AccountSummary");
  EXPECT_EQ(s.fields().at("rebuild_id").string_value(), "r-1");
  EXPECT_EQ(s.fields().at("events").number_value(), 1200);
  EXPECT_EQ(s.fields().at("thread").number_value(), 42);
  EXPECT_EQ(s.fields().at("level").string_value(), "info");
}

TEST(JsonLogFormatterTest, MessagesAreEscapedAndOtherBracketsKept) {
  const std::string message = "a \"quoted\"\tback\\slash\nline [not fields] [x]";
  const google::protobuf::Struct s = Parse(JsonLogLine("t", "warn", 1, message));
  EXPECT_EQ(s.fields().at("message").string_value(), message);
  EXPECT_EQ(s.fields().size(), 4u);
  // Reserved names are not fields.
  const google::protobuf::Struct r = Parse(JsonLogLine("t", "warn", 1, "m [level=oops]"));
  EXPECT_EQ(r.fields().at("level").string_value(), "warn");
  EXPECT_EQ(r.fields().at("message").string_value(), "m [level=oops]");
}

TEST(JsonLogFormatterTest, SpdlogWritesOneObjectPerLine) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("json", sink);
  logger.set_formatter(std::make_unique<JsonLogFormatter>());
  logger.warn("{}: skipping event at global position {} [event_type={} global_position={}]",
              "AccountReport v2", 17, "AccountFrozen", 17);
  logger.info("second");
  const std::string text = out.str();
  const size_t newline = text.find('\n');
  ASSERT_NE(newline, std::string::npos);
  const google::protobuf::Struct first = Parse(text.substr(0, newline));
  EXPECT_EQ(first.fields().at("level").string_value(), "warning");
  EXPECT_EQ(first.fields().at("global_position").number_value(), 17);
  EXPECT_EQ(first.fields().at("event_type").string_value(), "AccountFrozen");
  const std::string time = first.fields().at("time").string_value();
  EXPECT_EQ(time.size(), 27u) << time;  // 2026-12-04T21:00:00.000000Z
  EXPECT_EQ(time.back(), 'Z');
  EXPECT_EQ(Parse(text.substr(newline + 1)).fields().at("message").string_value(), "second");
}

}  // namespace
}  // namespace fidelis::server
