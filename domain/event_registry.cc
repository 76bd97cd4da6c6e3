#include "domain/event_registry.h"

#include "domain/event_types.h"
#include "domain/money.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "fidelis/v1/events.pb.h"

namespace fidelis {

void EventRegistry::RegisterSchema(std::string_view type, uint32_t version,
                                   const google::protobuf::Message* prototype) {
  types_[std::string(type)][version].prototype = prototype;
}

void EventRegistry::RegisterUpcaster(std::string_view type, uint32_t from_version,
                                     Upcaster upcaster) {
  types_[std::string(type)][from_version].to_next = std::move(upcaster);
}

uint32_t EventRegistry::CurrentVersion(std::string_view type) const {
  auto it = types_.find(type);
  if (it == types_.end() || it->second.empty()) return 0;
  return it->second.rbegin()->first;
}

const google::protobuf::Message* EventRegistry::CurrentPrototype(std::string_view type) const {
  auto it = types_.find(type);
  if (it == types_.end() || it->second.empty()) return nullptr;
  return it->second.rbegin()->second.prototype;
}

namespace {

absl::StatusOr<const google::protobuf::Message*> ParseInto(google::protobuf::Message* message,
                                                           std::string_view type,
                                                           uint32_t schema_version,
                                                           std::string_view payload) {
  if (!message->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return absl::DataLossError(
        StrCat("payload of ", type, " v", schema_version, " does not parse"));
  }
  return message;
}

}  // namespace

EventDecoder::Current& EventDecoder::CurrentOf(std::string_view type) {
  if (last_ != nullptr && last_->first == type) return last_->second;
  auto it = current_.find(type);
  if (it == current_.end()) {
    it = current_.emplace(std::string(type), Current{}).first;
    it->second.version = registry_->CurrentVersion(type);
    it->second.prototype = registry_->CurrentPrototype(type);
  }
  last_ = &*it;
  return it->second;
}

absl::StatusOr<const google::protobuf::Message*> EventDecoder::Decode(std::string_view type,
                                                                      uint32_t schema_version,
                                                                      std::string_view payload) {
  Current& current = CurrentOf(type);
  if (current.prototype != nullptr && current.version == schema_version) {
    if (!current.reused) current.reused.reset(current.prototype->New());
    return ParseInto(current.reused.get(), type, schema_version, payload);
  }
  ASSIGN_OR_RETURN(DecodedEvent decoded, registry_->Decode(type, schema_version, payload));
  upcast_ = std::move(decoded.payload);
  return upcast_.get();
}

absl::StatusOr<const google::protobuf::Message*> EventDecoder::DecodeOnArena(
    std::string_view type, uint32_t schema_version, std::string_view payload,
    google::protobuf::Arena* arena, std::unique_ptr<google::protobuf::Message>* upcast) {
  const Current& current = CurrentOf(type);
  if (current.prototype != nullptr && current.version == schema_version) {
    return ParseInto(current.prototype->New(arena), type, schema_version, payload);
  }
  ASSIGN_OR_RETURN(DecodedEvent decoded, registry_->Decode(type, schema_version, payload));
  *upcast = std::move(decoded.payload);
  return upcast->get();
}

absl::StatusOr<std::unique_ptr<google::protobuf::Message>> EventRegistry::ParseAsStored(
    std::string_view type, uint32_t schema_version, std::string_view payload) const {
  auto it = types_.find(type);
  if (it == types_.end()) {
    return absl::NotFoundError(StrCat("unknown event type '", type, "'"));
  }
  auto version = it->second.find(schema_version);
  if (version == it->second.end() || version->second.prototype == nullptr) {
    return absl::NotFoundError(
        StrCat("unknown schema version ", schema_version, " of event type '", type, "'"));
  }
  std::unique_ptr<google::protobuf::Message> message(version->second.prototype->New());
  if (!message->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return absl::DataLossError(
        StrCat("payload of ", type, " v", schema_version, " does not parse"));
  }
  return message;
}

absl::StatusOr<DecodedEvent> EventRegistry::Decode(std::string_view type, uint32_t schema_version,
                                                   std::string_view payload) const {
  ASSIGN_OR_RETURN(std::unique_ptr<google::protobuf::Message> message,
                   ParseAsStored(type, schema_version, payload));
  const auto& versions = types_.find(type)->second;
  const uint32_t current = versions.rbegin()->first;
  for (uint32_t v = schema_version; v < current; ++v) {
    auto step = versions.find(v);
    if (step == versions.end() || !step->second.to_next) {
      return absl::NotFoundError(StrCat("no upcaster from ", type, " v", v, " to v", v + 1));
    }
    auto lifted = step->second.to_next(*message);
    if (!lifted.ok()) {
      return absl::Status(lifted.status().code(),
                          StrCat("upcasting ", type, " v", v, ": ", lifted.status().message()));
    }
    message = std::move(lifted).value();
  }
  return DecodedEvent{std::string(type), current, std::move(message)};
}

namespace {

absl::StatusOr<v1::Money> UpcastAmount(double units, const std::string& currency) {
  ASSIGN_OR_RETURN(int64_t minor, RoundUnitsToMinor(units, currency));
  v1::Money money;
  money.set_minor_units(minor);
  money.set_currency(currency);
  return money;
}

// Adapts a typed lifting function to EventRegistry::Upcaster.
template <typename From, typename To>
EventRegistry::Upcaster Typed(std::function<absl::Status(const From&, To*)> lift) {
  return [lift](const google::protobuf::Message& old)
             -> absl::StatusOr<std::unique_ptr<google::protobuf::Message>> {
    auto out = std::make_unique<To>();
    RETURN_IF_ERROR(lift(static_cast<const From&>(old), out.get()));
    return std::unique_ptr<google::protobuf::Message>(std::move(out));
  };
}

}  // namespace

EventRegistry MakeAccountEventRegistry(std::string default_currency) {
  EventRegistry registry;
  registry.RegisterSchema(kAccountOpened, 1, &v1::AccountOpenedV1::default_instance());
  registry.RegisterSchema(kAccountOpened, 2, &v1::AccountOpened::default_instance());
  registry.RegisterSchema(kDepositMade, 1, &v1::DepositMadeV1::default_instance());
  registry.RegisterSchema(kDepositMade, 2, &v1::DepositMade::default_instance());
  registry.RegisterSchema(kWithdrawalMade, 1, &v1::WithdrawalMadeV1::default_instance());
  registry.RegisterSchema(kWithdrawalMade, 2, &v1::WithdrawalMade::default_instance());
  registry.RegisterSchema(kAccountClosed, 1, &v1::AccountClosed::default_instance());
  registry.RegisterSchema(kTransferDebited, 1, &v1::TransferDebited::default_instance());
  registry.RegisterSchema(kTransferCredited, 1, &v1::TransferCredited::default_instance());
  registry.RegisterSchema(kAccountNumberReserved, 1,
                          &v1::AccountNumberReserved::default_instance());

  const std::string currency = std::move(default_currency);
  registry.RegisterUpcaster(
      kAccountOpened, 1,
      Typed<v1::AccountOpenedV1, v1::AccountOpened>(
          [currency](const v1::AccountOpenedV1& old, v1::AccountOpened* out) -> absl::Status {
            out->set_account_id(old.account_id());
            out->set_account_number(old.account_number());
            out->set_holder_name(old.holder_name());
            ASSIGN_OR_RETURN(*out->mutable_opening_deposit(),
                             UpcastAmount(old.opening_deposit(), currency));
            return absl::OkStatus();
          }));
  registry.RegisterUpcaster(
      kDepositMade, 1,
      Typed<v1::DepositMadeV1, v1::DepositMade>(
          [currency](const v1::DepositMadeV1& old, v1::DepositMade* out) -> absl::Status {
            out->set_account_id(old.account_id());
            out->set_reference(old.reference());
            ASSIGN_OR_RETURN(*out->mutable_amount(), UpcastAmount(old.amount(), currency));
            return absl::OkStatus();
          }));
  registry.RegisterUpcaster(
      kWithdrawalMade, 1,
      Typed<v1::WithdrawalMadeV1, v1::WithdrawalMade>(
          [currency](const v1::WithdrawalMadeV1& old, v1::WithdrawalMade* out) -> absl::Status {
            out->set_account_id(old.account_id());
            out->set_reference(old.reference());
            ASSIGN_OR_RETURN(*out->mutable_amount(), UpcastAmount(old.amount(), currency));
            return absl::OkStatus();
          }));
  return registry;
}

}  // namespace fidelis
