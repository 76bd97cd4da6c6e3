#include "server/api/request_parsing.h"

#include <chrono>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "domain/errors.h"
#include "domain/strings.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "grpcpp/support/proto_buffer_writer.h"

namespace fidelis::server {

std::string FirstNonUtf8Field(const std::string& bytes,
                              const google::protobuf::Descriptor* descriptor) {
  using google::protobuf::FieldDescriptor;
  using google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  absl::flat_hash_map<int, int> seen;  // Field number -> occurrences so far.
  while (uint32_t tag = in.ReadTag()) {
    const FieldDescriptor* field =
        descriptor->FindFieldByNumber(WireFormatLite::GetTagFieldNumber(tag));
    if (field == nullptr ||
        WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (!WireFormatLite::SkipField(&in, tag)) return "";
      continue;
    }
    std::string name = field->name();
    if (field->is_repeated()) name = StrCat(name, "[", seen[field->number()]++, "]");
    std::string value;
    if (!WireFormatLite::ReadBytes(&in, &value)) return "";
    if (field->type() == FieldDescriptor::TYPE_STRING &&
        !WireFormatLite::VerifyUtf8String(value.data(), static_cast<int>(value.size()),
                                          WireFormatLite::PARSE, field->full_name().c_str())) {
      return name;
    }
    if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
      std::string inner = FirstNonUtf8Field(value, field->message_type());
      if (!inner.empty()) return StrCat(name, ".", inner);
    }
  }
  return "";
}

absl::Status ParseRequest(const grpc::ByteBuffer& raw, google::protobuf::Message& request) {
  grpc::ByteBuffer copy(raw);  // Reading consumes the buffer, which gRPC owns.
  grpc::ProtoBufferReader reader(&copy);
  if (request.ParseFromZeroCopyStream(&reader)) return absl::OkStatus();
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (raw.Dump(&slices).ok()) {
    for (const grpc::Slice& slice : slices) {
      bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
  }
  std::string field = FirstNonUtf8Field(bytes, request.GetDescriptor());
  if (!field.empty()) return InvalidField(field, "is not valid UTF-8");
  return absl::InvalidArgumentError(
      StrCat("the request does not parse as ", request.GetDescriptor()->full_name()));
}

void Reply(grpc::ServerUnaryReactor* reactor, grpc::ByteBuffer* out,
           const google::protobuf::Message& response) {
  grpc::ProtoBufferWriter writer(out, grpc::kProtoBufferWriterMaxBufferLength,
                                 static_cast<int>(response.ByteSizeLong()));
  if (!response.SerializeToZeroCopyStream(&writer)) {
    return reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, "cannot serialize"));
  }
  reactor->Finish(grpc::Status::OK);
}

absl::Time CallDeadline(const grpc::ServerContextBase& context, absl::Duration cap,
                        absl::Time now) {
  const absl::Time capped = cap == absl::InfiniteDuration() ? absl::InfiniteFuture() : now + cap;
  const auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return capped;
  const absl::Duration left = absl::FromChrono(deadline - std::chrono::system_clock::now());
  return std::min(capped, now + left);
}

}  // namespace fidelis::server
