// The rules on a tracked flow (maps/tollgate_flow.h) that the data path
// and the agent's flow counts share.
#include <gtest/gtest.h>

#include "abi.h"

extern "C" {
#include "tollgate_flow.h"
}

namespace {

constexpr uint64_t kSecond = 1000000000;

tg_config timeouts() {
  tg_config config{};
  config.tcp_syn_timeout_ns = 30 * kSecond;
  config.tcp_established_timeout_ns = 3600 * kSecond;
  config.tcp_closing_timeout_ns = 60 * kSecond;
  config.udp_timeout_ns = 120 * kSecond;
  return config;
}

constexpr uint32_t kService = 7;

tg_flow steered_flow() {
  tg_flow flow{};
  flow.backend_index = 3;
  flow.backend_generation = 5;
  flow.service_id = kService;
  flow.state = TG_FLOW_TCP_ESTABLISHED;
  return flow;
}

tg_backend slot(uint8_t state) {
  tg_backend backend{};
  backend.service_id = kService;
  backend.generation = 5;
  backend.state = state;
  backend.weight = 1;
  return backend;
}

}  // namespace

TEST(FlowRules, EachStateHasItsTimeout) {
  const tg_config config = timeouts();
  EXPECT_EQ(tg_flow_timeout(&config, TG_FLOW_TCP_SYN), 30 * kSecond);
  EXPECT_EQ(tg_flow_timeout(&config, TG_FLOW_TCP_ESTABLISHED), 3600 * kSecond);
  EXPECT_EQ(tg_flow_timeout(&config, TG_FLOW_TCP_CLOSING), 60 * kSecond);
  EXPECT_EQ(tg_flow_timeout(&config, TG_FLOW_UDP), 120 * kSecond);
}

TEST(FlowRules, AFlowExpiresOnlyPastTheTimeoutOfItsState) {
  const tg_config config = timeouts();
  tg_flow flow = steered_flow();
  flow.state = TG_FLOW_TCP_SYN;
  flow.last_seen_ns = 1000 * kSecond;
  EXPECT_FALSE(tg_flow_expired(&flow, &config, flow.last_seen_ns + 30 * kSecond));
  EXPECT_TRUE(tg_flow_expired(&flow, &config, flow.last_seen_ns + 30 * kSecond + 1));
  flow.state = TG_FLOW_TCP_ESTABLISHED;
  EXPECT_FALSE(tg_flow_expired(&flow, &config, flow.last_seen_ns + 31 * kSecond));
}

// Another CPU stamped the flow after `now` was read: it is fresh, not
// idle for 2^64 - 1 ns.
TEST(FlowRules, AFlowStampedAfterNowIsNotExpired) {
  const tg_config config = timeouts();
  tg_flow flow = steered_flow();
  flow.last_seen_ns = 1000 * kSecond;
  EXPECT_FALSE(tg_flow_expired(&flow, &config, flow.last_seen_ns - 1));
}

TEST(FlowRules, AFlowHoldsAnUpOrDrainingBackendOfItsService) {
  const tg_flow flow = steered_flow();
  const tg_backend up = slot(TG_BACKEND_UP), draining = slot(TG_BACKEND_DRAINING);
  EXPECT_TRUE(tg_flow_holds_backend(&flow, kService, &up));
  EXPECT_TRUE(tg_flow_holds_backend(&flow, kService, &draining));
}

TEST(FlowRules, AFlowLeavesABackendThatIsDownOrReleased) {
  const tg_flow flow = steered_flow();
  const tg_backend down = slot(TG_BACKEND_DOWN), unused = slot(TG_BACKEND_UNUSED);
  EXPECT_FALSE(tg_flow_holds_backend(&flow, kService, &down));
  EXPECT_FALSE(tg_flow_holds_backend(&flow, kService, &unused));
  EXPECT_FALSE(tg_flow_holds_backend(&flow, kService, nullptr));  // no such slot
}

TEST(FlowRules, AFlowLeavesASlotReusedOrGivenToAnotherService) {
  const tg_flow flow = steered_flow();
  tg_backend reused = slot(TG_BACKEND_UP);
  reused.generation = 6;
  EXPECT_FALSE(tg_flow_holds_backend(&flow, kService, &reused));
  tg_backend elsewhere = slot(TG_BACKEND_UP);
  elsewhere.service_id = kService + 1;
  EXPECT_FALSE(tg_flow_holds_backend(&flow, kService, &elsewhere));
  tg_backend released = slot(TG_BACKEND_UP);
  released.service_id = TG_SERVICE_NONE;
  EXPECT_FALSE(tg_flow_holds_backend(&flow, kService, &released));
}

// Its address now reaches another service (a port-specific service added
// beside the wildcard that steered it): the flow is selected anew there.
TEST(FlowRules, AFlowOfAnotherServiceHoldsNothing) {
  const tg_flow flow = steered_flow();
  const tg_backend up = slot(TG_BACKEND_UP);
  EXPECT_FALSE(tg_flow_holds_backend(&flow, kService + 1, &up));
}
