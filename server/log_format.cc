#include "server/log_format.h"

#include <chrono>
#include <ctime>
#include <vector>

#include "domain/strings.h"
#include "spdlog/details/log_msg.h"

namespace fidelis::server {
namespace {

bool AllDigits(std::string_view s) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool ValidKey(std::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!((c >= 'a' && c <= 'z') || c == '_' || (c >= '0' && c <= '9'))) return false;
  }
  return key != "time" && key != "level" && key != "thread" && key != "message";
}

// Splits "text [k=v k2=v2]" into the text and its fields; no fields when the tail is not
// exactly that shape.
std::string_view SplitFields(std::string_view message,
                             std::vector<std::pair<std::string_view, std::string_view>>* fields) {
  if (message.empty() || message.back() != ']') return message;
  const size_t open = message.rfind(" [");
  if (open == std::string_view::npos) return message;
  std::string_view inner = message.substr(open + 2, message.size() - open - 3);
  std::vector<std::pair<std::string_view, std::string_view>> found;
  while (!inner.empty()) {
    const size_t space = inner.find(' ');
    const std::string_view token = inner.substr(0, space);
    const size_t eq = token.find('=');
    if (eq == std::string_view::npos || !ValidKey(token.substr(0, eq))) return message;
    found.emplace_back(token.substr(0, eq), token.substr(eq + 1));
    inner = space == std::string_view::npos ? std::string_view() : inner.substr(space + 1);
  }
  if (found.empty()) return message;
  *fields = std::move(found);
  return message.substr(0, open);
}

std::string Line(const std::string& time, std::string_view level, size_t thread,
                 std::string_view message) {
  std::vector<std::pair<std::string_view, std::string_view>> fields;
  const std::string_view text = SplitFields(message, &fields);
  std::string out = "{\"time\":";
  AppendJsonString(time, &out);
  out.append(",\"level\":");
  AppendJsonString(level, &out);
  out.append(",\"thread\":");
  out.append(std::to_string(thread));
  out.append(",\"message\":");
  AppendJsonString(text, &out);
  for (const auto& [key, value] : fields) {
    out.push_back(',');
    AppendJsonString(key, &out);
    out.push_back(':');
    if (AllDigits(value)) {
      out.append(value);
    } else {
      AppendJsonString(value, &out);
    }
  }
  out.append("}\n");
  return out;
}

}  // namespace

std::string JsonLogLine(const std::string& time, const std::string& level, size_t thread,
                        const std::string& message) {
  return Line(time, level, thread, message);
}

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  const auto since_epoch = msg.time.time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - seconds).count();
  const std::time_t t = seconds.count();
  std::tm tm{};
  gmtime_r(&t, &tm);
  char time[80];
  std::snprintf(time, sizeof(time), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long>(micros));
  const auto level = spdlog::level::to_string_view(msg.level);
  const std::string line = Line(time, std::string_view(level.data(), level.size()), msg.thread_id,
                                std::string_view(msg.payload.data(), msg.payload.size()));
  dest.append(line.data(), line.data() + line.size());
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const {
  return std::make_unique<JsonLogFormatter>();
}

}  // namespace fidelis::server
