// The controller and the API without a kernel: against an in-memory data
// plane that records every write and can fail any one of them.
#include "controller.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "fake_dataplane.h"

namespace tollgate::test {
namespace {

TEST_F(ControllerTest, OneServiceChangeWritesThatServiceOnly) {
  ASSERT_TRUE(controller_->apply(config_of(100, 3), actor_));
  fake_.writes.clear();
  const ServiceAddress address = service(42, 3).address;
  ASSERT_TRUE(controller_->edit_service(
      address,
      [](std::optional<ServiceSpec>& spec) {
        spec->backends[1].state = BackendState::draining;
        return Status{};
      },
      actor_));
  EXPECT_EQ(fake_.writes, std::vector<std::string>{"apply 198.18.100.42:80/tcp"});
  EXPECT_EQ(fake_.services.at(address).backends[1].state, BackendState::draining);
  EXPECT_EQ(stored().desired.services[41].backends[1].state, BackendState::draining);

  // The whole config again, with one service changed: that one is written.
  Config next = controller_->snapshot()->desired();
  next.services[7].backends.pop_back();
  fake_.writes.clear();
  ASSERT_TRUE(controller_->apply(next, actor_));
  EXPECT_EQ(fake_.writes, std::vector<std::string>{"apply 198.18.100.8:80/tcp"});
  // And the same config once more: nothing.
  fake_.writes.clear();
  ASSERT_TRUE(controller_->apply(next, actor_));
  EXPECT_TRUE(fake_.writes.empty());
}

// Whichever write fails, the data path, the state file and the snapshot are
// all back as they were.
TEST_F(ControllerTest, AFailedWriteRollsBackEveryService) {
  ASSERT_TRUE(controller_->apply(config_of(5, 4), actor_));
  Config next = config_of(5, 4);
  next.access.deny.push_back(*Cidr::parse("198.18.0.128/25"));
  next.services[1].backends.pop_back();                     // changed
  next.services.erase(next.services.begin() + 3);           // removed
  next.services.push_back(service(9, 2));                   // added
  next.services[0].backends[0].state = BackendState::down;  // changed
  size_t writes = 0;
  {
    fake_.writes.clear();
    ASSERT_TRUE(controller_->apply(next, actor_));
    writes = fake_.writes.size();
    ASSERT_TRUE(controller_->apply(config_of(5, 4), actor_));  // back
  }
  ASSERT_GE(writes, 6u);  // timeouts, policy, remove, two changes, an add
  const auto before_fake = fake_.services;
  const AgentState before_file = stored();
  const auto before_snapshot = controller_->snapshot();
  for (size_t n = 1; n <= writes; ++n) {
    SCOPED_TRACE(fmt::format("write {} of {} fails", n, writes));
    fake_.fail_at = n;
    Status status = controller_->apply(next, actor_);
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().kind, ErrorKind::kernel);
    EXPECT_EQ(status.error().error_number, EIO);
    EXPECT_NE(status.error().message.find("the previous state is back in place"), std::string::npos)
        << status.error().message;
    EXPECT_EQ(fake_.services, before_fake);
    EXPECT_TRUE(fake_.access.empty());
    EXPECT_EQ(stored(), before_file);
    EXPECT_EQ(controller_->snapshot()->persisted(), before_snapshot->persisted());
    EXPECT_EQ(controller_->snapshot()->version, before_snapshot->version);
  }
  fake_.fail_at = 0;
  ASSERT_TRUE(controller_->apply(next, actor_));
  EXPECT_EQ(fake_.services.size(), 5u);
}

TEST_F(ControllerTest, AHeldDownBackendIsDownInTheDataPathAndOneState) {
  ASSERT_TRUE(controller_->apply(config_of(2, 3), actor_));
  const ServiceSpec web = service(1, 3);
  const BackendKey key{web.address, web.backends[0].endpoint};
  fake_.writes.clear();
  ASSERT_TRUE(controller_->set_held_down(key, true));
  EXPECT_EQ(fake_.writes, std::vector<std::string>{"apply 198.18.100.1:80/tcp"});
  EXPECT_EQ(fake_.services.at(web.address).backends[0].state, BackendState::down);
  auto snapshot = controller_->snapshot();
  EXPECT_EQ(snapshot->service(web.address)->backends[0].state, BackendState::up);  // desired
  EXPECT_FALSE(snapshot->selectable(web.address, snapshot->service(web.address)->backends[0]));
  EXPECT_EQ(stored().desired.services[0].backends[0].state, BackendState::up);  // not persisted
  // Another change of that service keeps it down in the data path.
  ASSERT_TRUE(controller_->edit_service(
      web.address,
      [](std::optional<ServiceSpec>& spec) {
        spec->backends[2].weight = 5;
        return Status{};
      },
      actor_));
  EXPECT_EQ(fake_.services.at(web.address).backends[0].state, BackendState::down);
  ASSERT_TRUE(controller_->set_held_down(key, false));
  EXPECT_EQ(fake_.services.at(web.address).backends[0].state, BackendState::up);
  // A removed backend is no longer held.
  ASSERT_TRUE(controller_->set_held_down(key, true));
  ASSERT_TRUE(controller_->edit_service(
      web.address,
      [](std::optional<ServiceSpec>& spec) {
        spec->backends.erase(spec->backends.begin());
        return Status{};
      },
      actor_));
  EXPECT_TRUE(controller_->snapshot()->held_down.empty());
}

// A snapshot shares with the one before it every service a change did not
// touch, and the maps from data-path numbers back to names unless slots moved.
TEST_F(ControllerTest, AChangeSharesWhatItDidNotTouch) {
  ASSERT_TRUE(controller_->apply(config_of(3, 2), actor_));
  const auto before = controller_->snapshot();
  const ServiceAddress second = service(2, 2).address;
  ASSERT_TRUE(controller_->edit_service(
      second,
      [](std::optional<ServiceSpec>& spec) {
        spec->backends[0].state = BackendState::draining;
        return Status{};
      },
      actor_));
  const auto drained = controller_->snapshot();
  EXPECT_EQ(drained->services.entries()[0], before->services.entries()[0]);
  EXPECT_NE(drained->services.entries()[1], before->services.entries()[1]);
  EXPECT_EQ(drained->services.entries()[2], before->services.entries()[2]);
  EXPECT_EQ(drained->backend_by_index, before->backend_by_index);  // a drain moves no slot
  EXPECT_EQ(drained->service_by_id, before->service_by_id);

  // A backend added: its slot is known by number and by name.
  const Endpoint added = *Endpoint::parse("198.18.1.99:8080");
  ASSERT_TRUE(controller_->edit_service(
      second,
      [&](std::optional<ServiceSpec>& spec) {
        spec->backends.push_back({added, 1, BackendState::up});
        return Status{};
      },
      actor_));
  const auto grown = controller_->snapshot();
  const auto index = grown->backend_index(second, added);
  ASSERT_TRUE(index);
  EXPECT_EQ(grown->backend_by_index->at(*index), (BackendKey{second, added}));
  EXPECT_EQ(grown->services.entries()[0], before->services.entries()[0]);

  // A service removed: gone by name and by number; the order of the rest stays.
  const ServiceAddress third = service(3, 2).address;
  const uint32_t third_id = *grown->service_id(third);
  ASSERT_TRUE(controller_->edit_service(
      third,
      [](std::optional<ServiceSpec>& spec) {
        spec.reset();
        return Status{};
      },
      actor_));
  const auto removed = controller_->snapshot();
  EXPECT_EQ(removed->service(third), nullptr);
  EXPECT_FALSE(removed->service_by_id->contains(third_id));
  ASSERT_EQ(stored().desired.services.size(), 2u);
  EXPECT_EQ(stored().desired.services[1].address, second);
  EXPECT_EQ(removed->persisted(), stored());
}

TEST_F(ControllerTest, ReadersDoNotWaitForAWriter) {
  ASSERT_TRUE(controller_->apply(config_of(3, 2), actor_));
  std::promise<void> inside, release;
  auto writer = std::async(std::launch::async, [&] {
    return controller_->edit_service(
        service(1, 2).address,
        [&](std::optional<ServiceSpec>& spec) {
          inside.set_value();
          release.get_future().wait_for(std::chrono::seconds(10));
          spec->backends[0].weight = 2;
          return Status{};
        },
        actor_);
  });
  inside.get_future().wait();
  // The writer holds the lock; a reader still gets the state as it was.
  auto reader = std::async(std::launch::async, [&] { return controller_->snapshot(); });
  ASSERT_EQ(reader.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(reader.get()->service(service(1, 2).address)->backends[0].weight, 1u);
  release.set_value();
  ASSERT_TRUE(writer.get());
  EXPECT_EQ(controller_->snapshot()->service(service(1, 2).address)->backends[0].weight, 2u);
}

TEST_F(ControllerTest, EditErrorsKeepTheirKindAndChangeNothing) {
  ASSERT_TRUE(controller_->apply(config_of(2, 2), actor_));
  const auto version = controller_->snapshot()->version;
  fake_.writes.clear();
  Status status = controller_->edit_service(
      service(1, 2).address, [](std::optional<ServiceSpec>&) { return Status{make_error(ErrorKind::conflict, "no")}; },
      actor_);
  EXPECT_EQ(status.error().kind, ErrorKind::conflict);
  // A spec that does not validate: invalid, naming the service and the field.
  status = controller_->edit_service(
      service(1, 2).address,
      [](std::optional<ServiceSpec>& spec) {
        spec->backends[0].weight = 0;
        return Status{};
      },
      actor_);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().kind, ErrorKind::invalid);
  EXPECT_EQ(status.error().message, "198.18.100.1:80/tcp: backends[0]: weight 0 is out of range 1-65535");
  // More than the data path holds: capacity.
  fake_.max_services = 2;
  status = controller_->edit_service(
      service(3, 1).address,
      [](std::optional<ServiceSpec>& spec) {
        spec = service(3, 1);
        return Status{};
      },
      actor_);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().kind, ErrorKind::capacity);
  EXPECT_TRUE(fake_.writes.empty());
  EXPECT_EQ(controller_->snapshot()->version, version);
}

// The access lists of all services together fit the data path's maps: a
// change of one service is checked against the others' entries as they
// are now (counted as services come, change and go).
TEST_F(ControllerTest, PolicyCapacityCountsEveryServicesEntries) {
  auto deny_list = [](uint32_t first, size_t count) {
    std::vector<Cidr> list;
    for (uint32_t i = 0; i < count; ++i)
      list.push_back({*IpAddress::parse(fmt::format("198.18.{}.{}", (first + i) / 256 % 256, (first + i) % 256)), 32});
    return list;
  };
  Config config = config_of(17, 1);
  for (uint32_t i = 0; i < 16; ++i) config.services[i].policy.access.deny = deny_list(i * 4000, 4000);
  ASSERT_TRUE(controller_->apply(config, actor_));  // 64,000 of 65,536
  auto set_deny = [&](uint32_t service_number, std::vector<Cidr> list) {
    return controller_->edit_service(
        service(service_number, 1).address,
        [&list](std::optional<ServiceSpec>& spec) {
          spec->policy.access.deny = std::move(list);
          return Status{};
        },
        actor_);
  };
  Status status = set_deny(17, deny_list(0, 4000));  // 68,000
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().kind, ErrorKind::capacity) << status.error().message;
  ASSERT_TRUE(set_deny(1, {}));                    // 60,000
  ASSERT_TRUE(set_deny(17, deny_list(0, 4000)));   // 64,000
  ASSERT_TRUE(set_deny(2, deny_list(100, 4000)));  // replaced: still 64,000
  status = set_deny(1, deny_list(0, 1600));        // 65,600
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().kind, ErrorKind::capacity) << status.error().message;
  // A removed service's entries are no longer counted.
  ASSERT_TRUE(controller_->edit_service(
      service(3, 1).address,
      [](std::optional<ServiceSpec>& spec) {
        spec.reset();
        return Status{};
      },
      actor_));
  EXPECT_TRUE(set_deny(1, deny_list(0, 1600)));  // 61,600
}

// The API on the fake: the error kinds come back as their statuses.
TEST_F(ApiOnFakeTest, ErrorKindsAreStatuses) {
  const std::string backends = "/v1/services/198.18.100.1%3A80%2Ftcp/backends";
  EXPECT_EQ(call("POST", backends, R"({"address": "198.18.1.10:8080"})").status, 409);
  EXPECT_EQ(call("PATCH", backends + "/198.18.1.99:8080", R"({"weight": 2})").status, 404);
  EXPECT_EQ(call("PATCH", backends + "/198.18.1.10:8080", R"({"weight": 0})").status, 400);
  fake_.max_services = 1;
  auto full = call("POST", "/v1/services", R"({"address": "198.18.100.2:80/tcp"})");
  EXPECT_EQ(full.status, 409) << full.body;
  EXPECT_NE(full.body.find("the data path holds at most 1"), std::string::npos) << full.body;
  fake_.fail_at = 1;
  auto failed = call("PATCH", backends + "/198.18.1.10:8080", R"({"state": "draining"})");
  EXPECT_EQ(failed.status, 500) << failed.body;
  EXPECT_NE(failed.body.find("the previous state is back in place"), std::string::npos) << failed.body;
  EXPECT_EQ(fake_.services.begin()->second.backends[0].state, BackendState::up);
  auto drained = call("PATCH", backends + "/198.18.1.10:8080", R"({"state": "draining"})");
  EXPECT_EQ(drained.status, 200) << drained.body;
  EXPECT_EQ(fake_.services.begin()->second.backends[0].state, BackendState::draining);
}

// The service list shows the digest of the table the data path holds:
// it changes with the backends in the table and comes back with them.
TEST_F(ApiOnFakeTest, ServicesShowTheirTablesDigest) {
  const std::string service = "/v1/services/198.18.100.1%3A80%2Ftcp";
  auto digest_of = [&](const HttpResponse& reply) {
    auto body = nlohmann::json::parse(reply.body);
    const auto& entry = body.is_array() ? body.at(0) : body;
    return entry.at("table_digest").get<std::string>();
  };
  const std::string digest = digest_of(call("GET", "/v1/services"));
  EXPECT_EQ(digest.size(), 16u);
  EXPECT_EQ(digest_of(call("GET", service)), digest);
  ASSERT_EQ(call("PATCH", service + "/backends/198.18.1.10:8080", R"({"state": "draining"})").status, 200);
  const std::string drained = digest_of(call("GET", "/v1/services"));
  EXPECT_NE(drained, digest);
  ASSERT_EQ(call("PATCH", service + "/backends/198.18.1.10:8080", R"({"state": "up"})").status, 200);
  EXPECT_EQ(digest_of(call("GET", "/v1/services")), digest);
}

// Concurrent edits of one service do not lose each other's change.
TEST_F(ApiOnFakeTest, ConcurrentEditsOfOneServiceAllLand) {
  const std::string backends = "/v1/services/198.18.100.1%3A80%2Ftcp/backends";
  std::vector<std::thread> threads;
  for (int i = 0; i < 20; ++i)
    threads.emplace_back([&, i] {
      auto reply = call("POST", backends, fmt::format(R"({{"address": "198.18.2.{}:8080"}})", i + 1));
      EXPECT_EQ(reply.status, 201) << reply.body;
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(controller_->snapshot()->services.entries()[0]->desired.backends.size(), 22u);
  EXPECT_EQ(fake_.services.begin()->second.backends.size(), 22u);
}

}  // namespace
}  // namespace tollgate::test
