// --log_format=json: spdlog writes one JSON object per line,
//
//   {"time":"2026-12-04T21:05:00.123456Z","level":"info","thread":1234,
//    "message":"rebuild r-1 of AccountSummary ... DONE in 1.2s: ...",
//    "projection":"AccountSummary","rebuild_id":"r-1","events":"120000"}
//
// A message may end with fields in brackets, " [projection=AccountSummary rebuild_id=r-1]":
// the text format shows them as written; the JSON format moves each into a member of its own
// (a value is a string, or a number when it is all digits) and drops the brackets from the
// message. Values hold no spaces or ']'.
//
// Thread-safety: spdlog clones the formatter per sink and calls it under the sink's lock.
#pragma once

#include <memory>
#include <string>

#include "spdlog/formatter.h"

namespace fidelis::server {

class JsonLogFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

// One line of the JSON format, for `message` at `level` (what format() writes, without the
// time and thread). For tests.
std::string JsonLogLine(const std::string& time, const std::string& level, size_t thread,
                        const std::string& message);

}  // namespace fidelis::server
