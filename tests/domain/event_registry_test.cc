#include "domain/event_registry.h"

#include "domain/event_types.h"
#include "fidelis/v1/events.pb.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace fidelis {
namespace {

TEST(EventRegistryTest, CurrentSchemaDecodesAsIs) {
  EventRegistry registry = MakeAccountEventRegistry("EUR");
  v1::DepositMade deposit;
  deposit.set_account_id("a");
  deposit.mutable_amount()->set_minor_units(1234);
  deposit.mutable_amount()->set_currency("USD");
  auto decoded = registry.Decode(kDepositMade, 2, deposit.SerializeAsString());
  ASSERT_OK(decoded);
  EXPECT_EQ(decoded->schema_version, 2u);
  const auto& out = static_cast<const v1::DepositMade&>(*decoded->payload);
  EXPECT_EQ(out.amount().minor_units(), 1234);
  EXPECT_EQ(out.amount().currency(), "USD");
}

TEST(EventRegistryTest, VersionOneAmountsAreUpcastHalfEvenWithTheDefaultCurrency) {
  EventRegistry registry = MakeAccountEventRegistry("GBP");
  v1::WithdrawalMadeV1 old;
  old.set_account_id("a");
  old.set_amount(10.125);
  old.set_reference("r");
  auto decoded = registry.Decode(kWithdrawalMade, 1, old.SerializeAsString());
  ASSERT_OK(decoded);
  EXPECT_EQ(decoded->schema_version, 2u);
  const auto& out = static_cast<const v1::WithdrawalMade&>(*decoded->payload);
  EXPECT_EQ(out.amount().minor_units(), 1012);
  EXPECT_EQ(out.amount().currency(), "GBP");
  EXPECT_EQ(out.reference(), "r");

  v1::AccountOpenedV1 opened;
  opened.set_account_id("a");
  opened.set_account_number("N1");
  opened.set_holder_name("H");
  opened.set_opening_deposit(99.995);
  auto opened_decoded = registry.Decode(kAccountOpened, 1, opened.SerializeAsString());
  ASSERT_OK(opened_decoded);
  const auto& o = static_cast<const v1::AccountOpened&>(*opened_decoded->payload);
  EXPECT_EQ(o.opening_deposit().minor_units(), 10000);  // 9999.5 rounds to even 10000.
  EXPECT_EQ(o.account_number(), "N1");
}

TEST(EventRegistryTest, UnknownTypesAndVersionsAreNotFound) {
  EventRegistry registry = MakeAccountEventRegistry("EUR");
  EXPECT_CODE(registry.Decode("InterestAccrued", 1, ""), kNotFound);
  EXPECT_CODE(registry.Decode(kDepositMade, 7, ""), kNotFound);
  EXPECT_CODE(registry.Decode(kDepositMade, 0, ""), kNotFound);
}

TEST(EventRegistryTest, GarbagePayloadIsDataLoss) {
  EventRegistry registry = MakeAccountEventRegistry("EUR");
  EXPECT_CODE(registry.Decode(kDepositMade, 2, std::string("\xff\xff\xff\xff", 4)), kDataLoss);
}

TEST(EventRegistryTest, NonFiniteVersionOneAmountFailsToUpcast) {
  EventRegistry registry = MakeAccountEventRegistry("EUR");
  v1::DepositMadeV1 old;
  old.set_amount(std::numeric_limits<double>::infinity());
  EXPECT_CODE(registry.Decode(kDepositMade, 1, old.SerializeAsString()), kInvalidArgument);
}

TEST(EventRegistryTest, UpcastersComposeAcrossVersions) {
  // A v3 of DepositMade that, say, doubles as a "Money" message: v1 -> v2 -> v3.
  EventRegistry registry = MakeAccountEventRegistry("EUR");
  registry.RegisterSchema(kDepositMade, 3, &v1::Money::default_instance());
  registry.RegisterUpcaster(
      kDepositMade, 2,
      [](const google::protobuf::Message& old)
          -> absl::StatusOr<std::unique_ptr<google::protobuf::Message>> {
        auto money = std::make_unique<v1::Money>(static_cast<const v1::DepositMade&>(old).amount());
        return std::unique_ptr<google::protobuf::Message>(std::move(money));
      });
  EXPECT_EQ(registry.CurrentVersion(kDepositMade), 3u);
  v1::DepositMadeV1 old;
  old.set_amount(1.5);
  auto decoded = registry.Decode(kDepositMade, 1, old.SerializeAsString());
  ASSERT_OK(decoded);
  EXPECT_EQ(decoded->schema_version, 3u);
  EXPECT_EQ(static_cast<const v1::Money&>(*decoded->payload).minor_units(), 150);
}

TEST(EventRegistryTest, AMissingLinkInTheChainIsNotFound) {
  EventRegistry registry;
  registry.RegisterSchema("Thing", 1, &v1::Money::default_instance());
  registry.RegisterSchema("Thing", 3, &v1::Money::default_instance());
  EXPECT_CODE(registry.Decode("Thing", 1, ""), kNotFound);
  EXPECT_OK(registry.Decode("Thing", 3, ""));
}

// Both decoder entry points, over runs of one type and switches between types (the decoder
// remembers the last type looked up).
TEST(EventDecoderTest, DecodesCurrentAndOldSchemasReusedOrOnAnArena) {
  EventRegistry registry = MakeAccountEventRegistry("EUR");
  EventDecoder decoder(&registry);
  v1::DepositMade deposit;
  deposit.mutable_amount()->set_minor_units(500);
  v1::WithdrawalMadeV1 old;
  old.set_amount(1.25);
  google::protobuf::Arena arena;
  for (int round = 0; round < 2; ++round) {
    auto reused = decoder.Decode(kDepositMade, 2, deposit.SerializeAsString());
    ASSERT_OK(reused);
    EXPECT_EQ(static_cast<const v1::DepositMade*>(*reused)->amount().minor_units(), 500);
    EXPECT_EQ((*reused)->GetArena(), nullptr);

    std::unique_ptr<google::protobuf::Message> upcast;
    auto on_arena =
        decoder.DecodeOnArena(kDepositMade, 2, deposit.SerializeAsString(), &arena, &upcast);
    ASSERT_OK(on_arena);
    EXPECT_EQ((*on_arena)->GetArena(), &arena);
    EXPECT_NE(*on_arena, *reused);
    EXPECT_EQ(upcast, nullptr);

    auto upcast_result =
        decoder.DecodeOnArena(kWithdrawalMade, 1, old.SerializeAsString(), &arena, &upcast);
    ASSERT_OK(upcast_result);
    ASSERT_NE(upcast, nullptr);
    EXPECT_EQ(*upcast_result, upcast.get());
    EXPECT_EQ(static_cast<const v1::WithdrawalMade*>(*upcast_result)->amount().minor_units(), 125);
  }
  std::unique_ptr<google::protobuf::Message> upcast;
  EXPECT_CODE(
      decoder.DecodeOnArena(kDepositMade, 2, std::string("\xff\xff\xff\xff", 4), &arena, &upcast),
      kDataLoss);
  EXPECT_CODE(decoder.DecodeOnArena("InterestAccrued", 1, "", &arena, &upcast), kNotFound);
  EXPECT_CODE(decoder.Decode("InterestAccrued", 1, ""), kNotFound);
}

}  // namespace
}  // namespace fidelis
