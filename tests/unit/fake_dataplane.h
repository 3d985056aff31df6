// The controller's and the API's test fixtures without a kernel: an
// in-memory data plane that records every write and can fail any one of
// them, a controller on it, and the API on that controller.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "api.h"
#include "controller.h"
#include "maglev.h"
#include "state.h"

namespace tollgate::test {

using nlohmann::json;

// What the data path would hold, and a log of the writes that made it.
class FakeDataplane final : public DataplaneTarget {
 public:
  // The `fail_at`-th write from now fails (1: the next one); 0: none.
  size_t fail_at = 0;
  size_t max_services = 1000;
  std::vector<std::string> writes;
  std::map<ServiceAddress, ServiceSpec> services;
  FlowTimeouts timeouts;
  AccessLists access;

  Status check_capacity(const std::vector<ServiceSpec>& specs) const override {
    if (specs.size() > max_services)
      return make_error(ErrorKind::capacity, "services: {} services, the data path holds at most {}", specs.size(),
                        max_services);
    return {};
  }
  Status check_service_capacity(const ServiceSpec& spec) const override {
    if (!services.contains(spec.address) && services.size() + 1 > max_services)
      return make_error(ErrorKind::capacity, "services: {} services, the data path holds at most {}",
                        services.size() + 1, max_services);
    return {};
  }
  Status set_timeouts(const FlowTimeouts& value) override {
    if (auto status = write("timeouts"); !status) return status;
    timeouts = value;
    return {};
  }
  Status set_global_policy(const AccessLists& lists, const EventSettings&) override {
    if (auto status = write("global_policy"); !status) return status;
    access = lists;
    return {};
  }
  Status apply_service(const ServiceSpec& spec) override {
    if (!ids_.contains(spec.address)) ids_[spec.address] = next_id_++;
    if (auto status = write("apply " + spec.address.to_string()); !status) {
      // Half of it written, as a kernel write that fails midway leaves it.
      ServiceSpec half = spec;
      half.backends.resize(spec.backends.size() / 2);
      services[spec.address] = half;
      return status;
    }
    services[spec.address] = spec;
    return {};
  }
  Status apply_services(const std::vector<ServiceSpec>& specs) override {
    for (const auto& spec : specs)
      if (auto status = apply_service(spec); !status) return status;
    return {};
  }
  Status remove_service(const ServiceAddress& address) override {
    if (auto status = write("remove " + address.to_string()); !status) return status;
    services.erase(address);
    ids_.erase(address);
    return {};
  }
  std::vector<ServiceAddress> service_addresses() const override {
    std::vector<ServiceAddress> out;
    for (const auto& [address, spec] : services) out.push_back(address);
    return out;
  }
  std::optional<ServiceSlots> slots(const ServiceAddress& address) const override {
    auto id = ids_.find(address);
    if (id == ids_.end()) return std::nullopt;
    ServiceSlots slots{id->second, {}};
    uint32_t index = id->second * 1000;
    std::vector<MaglevBackend> table_backends;
    for (const auto& backend : services.at(address).backends) {
      slots.backends[backend.endpoint] = ++index;
      if (backend.state == BackendState::up) table_backends.push_back({maglev_key(backend.endpoint), backend.weight});
    }
    // As the data path's: the digest of the table the spec gives.
    const ServiceSpec& spec = services.at(address);
    slots.table_digest = maglev_digest(table_backends, build_maglev_table(table_backends, spec.maglev_size));
    return slots;
  }

 private:
  Status write(std::string what) {
    writes.push_back(std::move(what));
    if (fail_at && --fail_at == 0)
      return errno_error(ErrorKind::kernel, EIO, "map update failed: I/O error [map = fake]");
    return {};
  }
  std::map<ServiceAddress, uint32_t> ids_;
  uint32_t next_id_ = 1;
};

inline ServiceSpec service(int number, int backends) {
  ServiceSpec spec;
  spec.address = *ServiceAddress::parse(fmt::format("198.18.100.{}:80/tcp", number));
  spec.maglev_size = 251;
  for (int i = 0; i < backends; ++i)
    spec.backends.push_back({*Endpoint::parse(fmt::format("198.18.1.{}:8080", 10 + i)), 1, BackendState::up});
  return spec;
}

inline Config config_of(int services, int backends) {
  Config config;
  for (int i = 1; i <= services; ++i) config.services.push_back(service(i, backends));
  return config;
}

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/tollgate-controller-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto audit = AuditLog::open(dir_ + "/audit.log");
    ASSERT_TRUE(audit) << audit.error().message;
    audit_ = std::move(*audit);
    controller_ = std::make_unique<Controller>(fake_, DataPathMaps{}, *audit_, dir_ + "/state", AgentState{});
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  AgentState stored() {
    auto state = load_state(dir_ + "/state");
    EXPECT_TRUE(state && *state);
    return state && *state ? **state : AgentState{};
  }

  const json actor_ = {{"source", "test"}};
  FakeDataplane fake_;
  std::string dir_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<Controller> controller_;
};

// The API on the fake, with one service of two backends.
class ApiOnFakeTest : public ControllerTest {
 protected:
  void SetUp() override {
    ControllerTest::SetUp();
    ASSERT_TRUE(controller_->apply(config_of(1, 2), actor_));
    api_ = std::make_unique<Api>(*controller_, *audit_, AccessPolicy{}, AgentInfo{});
  }
  HttpResponse call(const std::string& method, const std::string& path, const std::string& body = "",
                    const std::string& query = "") {
    HttpRequest request;
    request.method = method;
    request.path = path;
    request.query = query;
    request.body = body;
    return api_->handle(request);
  }
  std::unique_ptr<Api> api_;
};

}  // namespace tollgate::test
