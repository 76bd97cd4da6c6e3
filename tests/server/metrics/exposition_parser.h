// A strict parser of the Prometheus text exposition format (0.0.4), for tests: it refuses
// anything a scraper could misread, rather than skipping it.
//
// Checked: every line is a HELP, a TYPE or a sample; each family has HELP then TYPE before its
// samples, and its samples are contiguous; sample names belong to the family (a histogram's
// _bucket, _sum and _count); metric and label names are valid; label values are quoted with
// only \\, \" and \n escapes; no series repeats; values are floats (+Inf, -Inf, NaN allowed);
// counters are not negative; a histogram's buckets are cumulative, end at le="+Inf", and equal
// its _count.
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace fidelis::testing {

struct ParsedExposition {
  // Family name -> type ("counter", "gauge", "histogram").
  std::map<std::string, std::string> types;
  // Series, written name{a="x",b="y"} with labels sorted by name -> value.
  std::map<std::string, double> series;

  // The value of a series, or NaN when absent. `labels`: {{"a","x"}, ...} in any order.
  double Get(const std::string& name,
             std::vector<std::pair<std::string, std::string>> labels = {}) const {
    auto it = series.find(Key(name, std::move(labels)));
    return it == series.end() ? std::nan("") : it->second;
  }

  static std::string Key(const std::string& name,
                         std::vector<std::pair<std::string, std::string>> labels) {
    std::sort(labels.begin(), labels.end());
    std::string key = name;
    if (!labels.empty()) {
      key += "{";
      for (size_t i = 0; i < labels.size(); ++i) {
        absl::StrAppend(&key, i ? "," : "", labels[i].first, "=\"", labels[i].second, "\"");
      }
      key += "}";
    }
    return key;
  }
};

namespace exposition_internal {

inline bool ValidName(const std::string& name, bool label) {
  if (name.empty() || (label && name.rfind("__", 0) == 0)) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (!label && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

inline bool ParseValue(const std::string& text, double* value) {
  if (text == "+Inf" || text == "Inf") {
    *value = INFINITY;
    return true;
  }
  if (text == "-Inf") {
    *value = -INFINITY;
    return true;
  }
  if (text == "NaN") {
    *value = std::nan("");
    return true;
  }
  if (text.empty()) return false;
  char* end = nullptr;
  *value = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && !std::isnan(*value) && !std::isinf(*value);
}

}  // namespace exposition_internal

inline absl::StatusOr<ParsedExposition> ParseExposition(const std::string& text) {
  using exposition_internal::ParseValue;
  using exposition_internal::ValidName;
  ParsedExposition parsed;
  std::set<std::string> finished;  // Families whose samples have ended.
  std::string current;             // The family whose samples may come now.
  std::set<std::string> helped;
  // Histogram checks: series without le -> {le -> cumulative count}, and _count values.
  std::map<std::string, std::vector<std::pair<double, double>>> buckets;
  std::map<std::string, double> counts;
  if (!text.empty() && text.back() != '\n') return absl::InvalidArgumentError("no final newline");
  int line_number = 0;
  for (absl::string_view line_view : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    ++line_number;
    const std::string line(line_view);
    auto fail = [&](const std::string& why) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", why, ": ", line));
    };
    if (line[0] == '#') {
      std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (parts.size() < 3 || (parts[1] != "HELP" && parts[1] != "TYPE")) {
        return fail("a comment that is neither HELP nor TYPE");
      }
      const std::string& name = parts[2];
      if (!ValidName(name, false)) return fail("invalid metric name");
      if (parts[1] == "HELP") {
        if (helped.count(name) || finished.count(name)) return fail("a second HELP");
        if (!current.empty()) finished.insert(current);
        current = name;
        helped.insert(name);
        const std::string help = parts.size() > 3 ? parts[3] : "";
        for (size_t i = 0; i < help.size(); ++i) {
          if (help[i] == '\\') {
            if (i + 1 >= help.size() || (help[i + 1] != '\\' && help[i + 1] != 'n')) {
              return fail("a bad escape in HELP");
            }
            ++i;
          }
        }
        continue;
      }
      if (name != current || parsed.types.count(name)) return fail("TYPE not right after HELP");
      if (parts.size() != 4 ||
          (parts[3] != "counter" && parts[3] != "gauge" && parts[3] != "histogram")) {
        return fail("an unknown type");
      }
      parsed.types[name] = parts[3];
      continue;
    }
    // name{labels} value
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    const std::string name = line.substr(0, i);
    if (!ValidName(name, false)) return fail("invalid metric name");
    if (current.empty() || !parsed.types.count(current)) return fail("a sample before TYPE");
    const std::string& type = parsed.types[current];
    std::string suffix;
    if (name == current) {
      if (type == "histogram") return fail("a histogram sample without a suffix");
    } else if (type == "histogram" && name.rfind(current, 0) == 0) {
      suffix = name.substr(current.size());
      if (suffix != "_bucket" && suffix != "_sum" && suffix != "_count") {
        return fail("not a sample of family " + current);
      }
    } else {
      return fail("not a sample of family " + current);
    }
    std::vector<std::pair<std::string, std::string>> labels;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) return fail("a label without =");
        const std::string label = line.substr(i, eq - i);
        if (!ValidName(label, true)) return fail("invalid label name '" + label + "'");
        for (const auto& l : labels) {
          if (l.first == label) return fail("a repeated label");
        }
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') return fail("an unquoted label value");
        ++i;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\') {
            if (i + 1 >= line.size()) return fail("a bad escape");
            const char e = line[i + 1];
            if (e == '\\') {
              value += '\\';
            } else if (e == '"') {
              value += '"';
            } else if (e == 'n') {
              value += '\n';
            } else {
              return fail("a bad escape");
            }
            i += 2;
          } else {
            value += line[i++];
          }
        }
        if (i >= line.size()) return fail("an unterminated label value");
        ++i;
        labels.emplace_back(label, value);
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) return fail("an unterminated label set");
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') return fail("no space before the value");
    const std::string rest = line.substr(i + 1);
    if (rest.find(' ') != std::string::npos) return fail("a timestamp or extra text");
    double value = 0;
    if (!ParseValue(rest, &value)) return fail("an invalid value");
    if ((type == "counter" || suffix == "_count" || suffix == "_bucket") &&
        (value < 0 || std::isnan(value))) {
      return fail("a negative count");
    }
    if (suffix == "_bucket") {
      double le = 0;
      auto it =
          std::find_if(labels.begin(), labels.end(), [](const auto& l) { return l.first == "le"; });
      if (it == labels.end() || !ParseValue(it->second, &le)) return fail("a bucket without le");
      std::vector<std::pair<std::string, std::string>> others;
      for (const auto& l : labels) {
        if (l.first != "le") others.push_back(l);
      }
      std::vector<std::pair<double, double>>& list =
          buckets[ParsedExposition::Key(current, others)];
      if (!list.empty() && (le <= list.back().first || value < list.back().second)) {
        return fail("buckets not increasing and cumulative");
      }
      list.emplace_back(le, value);
    }
    if (suffix == "_count") counts[ParsedExposition::Key(current, labels)] = value;
    const std::string key = ParsedExposition::Key(name, labels);
    if (!parsed.series.emplace(key, value).second) return fail("a repeated series");
  }
  for (const auto& [series, list] : buckets) {
    if (list.empty() || !std::isinf(list.back().first)) {
      return absl::InvalidArgumentError(series + ": no le=\"+Inf\" bucket");
    }
    auto count = counts.find(series);
    if (count == counts.end() || count->second != list.back().second) {
      return absl::InvalidArgumentError(series + ": _count differs from the +Inf bucket");
    }
  }
  for (const auto& [series, count] : counts) {
    if (!buckets.count(series)) return absl::InvalidArgumentError(series + ": no buckets");
  }
  return parsed;
}

}  // namespace fidelis::testing
