// fidelis events ...: reading the log (read) and following it live (tail).
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "clients/cli.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/time_util.h"

namespace fidelis::clients {
namespace {

using google::protobuf::util::TimeUtil;

// One field's value: money as "12.34 EUR", text quoted when it holds a space, other messages
// in the protobuf text format on one line.
std::string DescribeValue(const google::protobuf::Message& message,
                          const google::protobuf::FieldDescriptor* field) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection& r = *message.GetReflection();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      const google::protobuf::Message& value = r.GetMessage(message, field);
      if (const auto* money = dynamic_cast<const v1::Money*>(&value)) {
        return FormatAmount(money->minor_units(), money->currency()) + " " + money->currency();
      }
      return "{" + value.ShortDebugString() + "}";
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string text = r.GetString(message, field);
      return text.find(' ') == std::string::npos ? text : "\"" + text + "\"";
    }
    default: {
      std::string text;
      google::protobuf::TextFormat::PrintFieldValueToString(message, field, -1, &text);
      return text;
    }
  }
}

// The payload's fields that are set, as "name=value" pairs; the type's name when this client
// does not know it.
std::string DescribePayload(const google::protobuf::Any& payload) {
  const std::string type = payload.type_url().substr(payload.type_url().rfind('/') + 1);
  const google::protobuf::Descriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(type);
  if (descriptor == nullptr)
    return "(" + type + ", " + std::to_string(payload.value().size()) + " bytes)";
  std::unique_ptr<google::protobuf::Message> message(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(descriptor)->New());
  if (!payload.UnpackTo(message.get())) return "(" + type + ", undecodable)";
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  message->GetReflection()->ListFields(*message, &fields);
  std::string out;
  for (const auto* field : fields) {
    if (field->is_repeated()) continue;
    if (!out.empty()) out += " ";
    out += field->name() + "=" + DescribeValue(*message, field);
  }
  return out;
}

std::string DescribeEvent(const v1::RecordedEvent& e) {
  return std::to_string(e.global_position()) + "  " + e.stream_id() + "@" +
         std::to_string(e.stream_version()) + "  " + e.type() + " v" +
         std::to_string(e.schema_version()) + "  " + TimeUtil::ToString(e.timestamp()) + "  " +
         DescribePayload(e.payload());
}

void PrintEvent(const Cli& cli, const v1::RecordedEvent& e) {
  std::cout << (cli.json ? ToJson(e) : DescribeEvent(e)) << std::endl;
}

struct ReadFlags {
  std::string stream;
  int64_t from_version = 1;
  uint64_t from_position = 1;
  int max_count = 100;
};

int RunRead(Cli& cli, const ReadFlags& f) {
  if (!f.stream.empty()) {
    v1::ReadStreamRequest request;
    request.set_stream_id(f.stream);
    request.set_from_version(f.from_version);
    request.set_max_count(f.max_count);
    v1::ReadStreamResponse response;
    grpc::Status status = cli.log().ReadStream(cli.Context().get(), request, &response);
    if (!status.ok()) return ReportStatus(status);
    for (const auto& e : response.events()) PrintEvent(cli, e);
    return 0;
  }
  v1::ReadAllRequest request;
  request.set_from_position(f.from_position);
  request.set_max_count(f.max_count);
  v1::ReadAllResponse response;
  grpc::Status status = cli.log().ReadAll(cli.Context().get(), request, &response);
  if (!status.ok()) return ReportStatus(status);
  for (const auto& e : response.events()) PrintEvent(cli, e);
  if (!cli.json) std::cout << "head position: " << response.head_position() << "\n";
  return 0;
}

struct TailFlags {
  uint64_t from_position = 1;
  uint64_t limit = 0;
};

int RunTail(Cli& cli, const TailFlags& f) {
  auto context = cli.Context(/*stream=*/true);  // No deadline: a tail follows until stopped.
  v1::SubscribeAllRequest request;
  request.set_from_position(f.from_position);
  auto reader = cli.log().SubscribeAll(context.get(), request);
  v1::RecordedEvent e;
  uint64_t seen = 0;
  while (reader->Read(&e)) {
    PrintEvent(cli, e);
    if (f.limit > 0 && ++seen >= f.limit) {
      context->TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  if (f.limit > 0 && seen >= f.limit) return 0;
  return ReportStatus(status);
}

}  // namespace

void AddEventCommands(CLI::App& app, Cli& cli) {
  CLI::App* events = app.add_subcommand("events", "Read the event log");
  events->require_subcommand(1);

  auto read_flags = std::make_shared<ReadFlags>();
  CLI::App* read = events->add_subcommand("read", "Read a stream, or the whole log");
  read->add_option("--stream", read_flags->stream, "Stream id, e.g. Account-<id>; omit for all");
  read->add_option("--from-version", read_flags->from_version, "First stream version")
      ->capture_default_str();
  read->add_option("--from-position", read_flags->from_position,
                   "First global position (whole log)")
      ->capture_default_str();
  read->add_option("--max", read_flags->max_count, "Most events to read (1-1000)")
      ->capture_default_str();
  OnRun(read, cli, [&cli, read_flags] { return RunRead(cli, *read_flags); });

  auto tail_flags = std::make_shared<TailFlags>();
  CLI::App* tail = events->add_subcommand("tail", "Follow the log live (Ctrl-C to stop)");
  tail->add_option("--from-position", tail_flags->from_position, "First global position")
      ->capture_default_str();
  tail->add_option("--limit", tail_flags->limit, "Stop after this many events (0: never)");
  OnRun(tail, cli, [&cli, tail_flags] { return RunTail(cli, *tail_flags); });
}

}  // namespace fidelis::clients
