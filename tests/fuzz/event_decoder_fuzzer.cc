// libFuzzer target: the event decoder, the upcaster chain, the aggregate and the projectors on
// arbitrary bytes. Input: [type selector][schema version][payload...]. Must never crash,
// whatever the bytes; errors are statuses.
#include <cstddef>
#include <cstdint>
#include <string>

#include "domain/account.h"
#include "domain/account_projectors.h"
#include "domain/event_registry.h"
#include "domain/event_types.h"
#include "tests/domain/fake_row_store.h"

namespace {

const fidelis::EventRegistry& Registry() {
  static const auto* registry =
      new fidelis::EventRegistry(fidelis::MakeAccountEventRegistry("EUR"));
  return *registry;
}

constexpr std::string_view kTypes[] = {
    fidelis::kAccountOpened,         fidelis::kDepositMade,     fidelis::kWithdrawalMade,
    fidelis::kAccountClosed,         fidelis::kTransferDebited, fidelis::kTransferCredited,
    fidelis::kAccountNumberReserved, "InterestAccrued",         ""};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string_view type = kTypes[data[0] % std::size(kTypes)];
  const uint32_t version = data[1] % 4;
  const std::string_view payload(reinterpret_cast<const char*>(data + 2), size - 2);
  const fidelis::EventRegistry& registry = Registry();

  (void)registry.ParseAsStored(type, version, payload);
  fidelis::EventDecoder decoder(&registry);
  auto decoded = decoder.Decode(type, version, payload);
  auto owned = registry.Decode(type, version, payload);
  if (decoded.ok() != owned.ok()) __builtin_trap();  // The two decoders must agree.
  if (!decoded.ok()) return 0;

  fidelis::AccountState state;
  (void)fidelis::ApplyAccountEvent(state, type, **decoded);
  fidelis::EventView view;
  view.global_position = 1;
  view.stream_id = "Account-0123456789abcdef0123456789abcdef";
  view.type = type;
  view.timestamp_micros = static_cast<int64_t>(size) * 1'000'003;
  view.payload = *decoded;
  for (const auto& projector : fidelis::MakeAccountProjectors()) {
    fidelis::testing::FakeRowStore rows;  // Each projection has its own rows.
    (void)projector->Apply(view, rows);
    (void)projector->Apply(view, rows);  // Twice: the second sees the row the first made.
  }
  return 0;
}
