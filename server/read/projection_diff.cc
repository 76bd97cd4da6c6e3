#include "server/read/projection_diff.h"

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "domain/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"

namespace fidelis::server {
namespace {

// A row for people: JSON when its type is known, else its bytes in hex.
std::string RenderRow(const Projector& projector, std::string_view key, std::string_view bytes) {
  const google::protobuf::Message* type = projector.RowType(key);
  if (type != nullptr) {
    std::unique_ptr<google::protobuf::Message> row(type->New());
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    if (row->ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) &&
        google::protobuf::util::MessageToJsonString(*row, &json, options).ok()) {
      return json;
    }
  }
  std::string hex;
  for (unsigned char c : bytes) absl::StrAppend(&hex, absl::Hex(c, absl::kZeroPad2));
  return hex;
}

// The fields that differ between two rows of the same type, one per line.
std::string FieldDifferences(const Projector& a_projector, const Projector& b_projector,
                             std::string_view key, std::string_view a, std::string_view b) {
  const google::protobuf::Message* a_type = a_projector.RowType(key);
  const google::protobuf::Message* b_type = b_projector.RowType(key);
  if (a_type == nullptr || a_type != b_type) return "the rows differ (types differ or unknown)";
  std::unique_ptr<google::protobuf::Message> a_row(a_type->New()), b_row(b_type->New());
  if (!a_row->ParseFromArray(a.data(), static_cast<int>(a.size())) ||
      !b_row->ParseFromArray(b.data(), static_cast<int>(b.size()))) {
    return "a row does not parse";
  }
  std::string report;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&report);
  differencer.Compare(*a_row, *b_row);
  return report.empty() ? "the encodings differ" : report;
}

v1::ProjectionBuild DescribeBuild(const ProjectionRunner& runner, uint64_t rows,
                                  uint64_t checkpoint) {
  v1::ProjectionBuild out;
  out.set_build(runner.build().ToString());
  out.set_version(runner.build().version);
  out.set_checkpoint(checkpoint);
  out.set_rows(rows);
  return out;
}

}  // namespace

absl::StatusOr<v1::DiffProjectionResponse> DiffBuilds(const ProjectionRunner& a,
                                                      const ProjectionRunner& b,
                                                      const storage::ReadSnapshot& snapshot,
                                                      uint64_t checkpoint, size_t max_differences) {
  v1::DiffProjectionResponse response;
  response.set_checkpoint(checkpoint);
  uint64_t a_rows = 0, b_rows = 0;
  RETURN_IF_ERROR(storage::ProjectionStore::Compare(
      a.store(), b.store(), snapshot.get(),
      [&](std::string_view key, std::optional<std::string_view> a_value,
          std::optional<std::string_view> b_value) {
        response.set_differing_rows(response.differing_rows() + 1);
        if (!b_value) response.set_only_in_a(response.only_in_a() + 1);
        if (!a_value) response.set_only_in_b(response.only_in_b() + 1);
        if (static_cast<size_t>(response.differences_size()) >= max_differences) return;
        v1::RowDifference* difference = response.add_differences();
        difference->set_key(std::string(key));
        if (a_value) difference->set_a(RenderRow(a.projector(), key, *a_value));
        if (b_value) difference->set_b(RenderRow(b.projector(), key, *b_value));
        if (a_value && b_value) {
          difference->set_fields(
              FieldDifferences(a.projector(), b.projector(), key, *a_value, *b_value));
        } else {
          difference->set_fields(a_value ? "only in a" : "only in b");
        }
      },
      &a_rows, &b_rows));
  *response.mutable_a() = DescribeBuild(a, a_rows, checkpoint);
  *response.mutable_b() = DescribeBuild(b, b_rows, checkpoint);
  return response;
}

}  // namespace fidelis::server
