// The agent's control path on the real data path: the API validates whole
// and changes nothing on bad input, refuses callers who are not allowed,
// audits; and pinned maps are adopted by the next agent with every slot,
// table and flow in place.
#include <sched.h>
#include <sys/mount.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "api.h"
#include "cli.h"
#include "controller.h"
#include "datapath_fixture.h"
#include "maglev.h"
#include "state.h"

namespace tollgate::test {
namespace {

using nlohmann::json;

class AgentTest : public DataPathTest {
 protected:
  void SetUp() override {
    DataPathTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    char pattern[] = "/tmp/tollgate-agent-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto audit = AuditLog::open(dir_ + "/audit.log");
    ASSERT_TRUE(audit) << audit.error().message;
    audit_ = std::move(*audit);
    controller_ = std::make_unique<Controller>(*dataplane_, datapath_->maps(), *audit_, dir_ + "/state", AgentState{});
    Config config;
    config.services.push_back(service_spec(kIpv4, 6, 3));
    ASSERT_TRUE(controller_->apply(config, {{"source", "test"}}));
    AccessPolicy access;
    access.gids = {2000};
    api_ = std::make_unique<Api>(*controller_, *audit_, access, AgentInfo{});
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  HttpResponse call(const std::string& method, const std::string& path, const std::string& body = "", uid_t uid = 0,
                    std::vector<gid_t> groups = {}) {
    HttpRequest request;
    request.method = method;
    auto question = path.find('?');
    request.path = path.substr(0, question);
    if (question != std::string::npos) request.query = path.substr(question + 1);
    request.body = body;
    request.caller.pid = 4242;
    request.caller.uid = uid;
    request.caller.gid = uid;
    request.caller.groups = std::move(groups);
    request.caller.command_line = "tollgate test";
    return api_->handle(request);
  }

  std::vector<json> audit_lines() {
    std::ifstream file(dir_ + "/audit.log");
    std::vector<json> lines;
    for (std::string line; std::getline(file, line);) lines.push_back(json::parse(line));
    return lines;
  }

  std::string state_file() {
    std::ifstream file(dir_ + "/state/state.json");
    return std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  }

  // The service SetUp applies (backends 0-2 of kIpv4), and its API path.
  const ServiceAddress web_ = service_address(kIpv4, 6);
  const std::string web_path_ = "/v1/services/" + cli::encode_segment(web_.to_string());
  // Its first backend, and one not in it.
  const std::string b1_ = backend_endpoint(kIpv4, 0).to_string();
  const std::string b4_ = backend_endpoint(kIpv4, 3).to_string();
  std::string dir_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<Api> api_;
};

TEST_F(AgentTest, BadRequestsChangeNothingAndAreAudited) {
  struct Case {
    const char* method;
    std::string path;
    std::string body;
    int status;
    const char* error;
  };
  const std::string backends = web_path_ + "/backends";
  const std::string b1 = backends + "/" + cli::encode_segment(b1_);
  const Case cases[] = {
      {"POST", "/v1/services", R"({"address": "198.18.100.2:99999/tcp"})", 400, "address: bad port '99999'"},
      {"POST", "/v1/services", R"({"address": "198.18.100.2:80/tcp", "colour": "red"})", 400, "colour: unknown field"},
      {"POST", "/v1/services", R"({"backends": []})", 400, "address: missing"},
      {"POST", "/v1/services",
       R"({"address": "198.18.100.2:80/tcp", "backends": [{"address": "198.18.1.11:80"}, {"address": "198.18.1.11:80"}]})",
       400, "backends[1]: 198.18.1.11:80 is listed twice"},
      {"POST", "/v1/services", R"({"address": "198.18.100.2:80/tcp", "maglev_size": 100})", 400,
       "maglev_size: 100 is not a prime"},
      {"POST", "/v1/services", json{{"address", web_.to_string()}}.dump(), 409, "already exists"},
      {"POST", backends, R"({"address": "198.18.1.14:8080", "weight": 70000})", 400, "weight: 70000 is out of range"},
      {"POST", backends, R"({"address": "198.18.1.14"})", 400, "address: "},
      {"POST", backends, R"({"address": "[2001:db8:1::14]:8080"})", 400, "not of the service's address family"},
      {"POST", backends, json{{"address", b1_}}.dump(), 409, "already exists"},
      {"POST", backends, "not json", 400, "body: line 1, column 2: syntax error"},
      {"POST", backends, "[]", 400, "body: expected a JSON object"},
      {"POST", backends, "", 400, "body: expected a JSON object"},
      {"PATCH", b1, R"({"weight": 0})", 400, "weight: 0 is out of range"},
      {"PATCH", b1, R"({"state": "sleepy"})", 400, "state: unknown state 'sleepy'"},
      {"PATCH", b1, R"({"address": "198.18.1.12:8080"})", 400, "address: unknown field"},
      {"PATCH", backends + "/198.18.1.99%3A8080", R"({"weight": 2})", 404, "not in service"},
      {"DELETE", "/v1/services/198.18.100.9%3A80%2Ftcp", "", 404, "does not exist"},
      {"DELETE", "/v1/services/bogus", "", 400, "service: "},
      {"DELETE", "/v1/services/198.18.100.1%3A80%2", "", 400, "bad percent escape"},
      {"PUT", "/v1/config",
       R"({"services": [{"address": "198.18.100.1:80/tcp", "backends": [{"address": "198.18.1.11:80", "weight": 0}]}]})",
       400, "services[0].backends[0].weight: 0 is out of range"},
      {"PUT", "/v1/config", R"({"timeouts": {"udp": -1}})", 400, "timeouts.udp: expected an integer"},
      {"PUT", "/v1/status", "{}", 405, "not allowed"},
      {"GET", "/v1/nothing", "", 404, "no such endpoint"},
      {"GET", "/v2/services", "", 404, "/v1"},
      {"GET", "/v1/conntrack?limit=abc", "", 400, "limit: "},
  };
  const Config before = controller_->snapshot()->desired();
  const std::vector<uint32_t> table = *dataplane_->active_table(web_);
  const std::string file_before = state_file();
  const size_t audit_before = audit_lines().size();
  for (const auto& test_case : cases) {
    HttpResponse response = call(test_case.method, test_case.path, test_case.body);
    std::string what = fmt::format("{} {} {}", test_case.method, test_case.path, test_case.body);
    EXPECT_EQ(response.status, test_case.status) << what << "\n" << response.body;
    auto error = json::parse(response.body).value("error", "");
    EXPECT_NE(error.find(test_case.error), std::string::npos) << what << "\n  -> " << error;
  }
  EXPECT_EQ(controller_->snapshot()->desired(), before);
  EXPECT_EQ(*dataplane_->active_table(web_), table);
  EXPECT_EQ(state_file(), file_before);
  auto lines = audit_lines();
  ASSERT_EQ(lines.size() - audit_before, std::size(cases));
  for (size_t i = audit_before; i < lines.size(); ++i) {
    EXPECT_NE(lines[i]["result"], "ok") << lines[i];
    EXPECT_EQ(lines[i]["actor"]["caller"]["pid"], 4242);
    EXPECT_FALSE(lines[i]["error"].get<std::string>().empty()) << lines[i];
  }
}

TEST_F(AgentTest, OnlyAllowedCallersGetIn) {
  const Config before = controller_->snapshot()->desired();
  HttpResponse refused = call("DELETE", web_path_, "", 1000);
  EXPECT_EQ(refused.status, 403);
  EXPECT_NE(refused.body.find("uid 1000 (gid 1000) is not allowed"), std::string::npos) << refused.body;
  EXPECT_EQ(call("GET", "/v1/services", "", 1000).status, 403);
  EXPECT_EQ(controller_->snapshot()->desired(), before);
  EXPECT_TRUE(dataplane_->service_id(web_));
  auto lines = audit_lines();
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines[lines.size() - 2]["result"], "denied");
  EXPECT_EQ(lines[lines.size() - 2]["action"], fmt::format("DELETE {}", web_path_));
  EXPECT_EQ(lines[lines.size() - 2]["actor"]["caller"]["uid"], 1000);
  // A member of an allowed group (supplementary) may.
  EXPECT_EQ(call("GET", "/v1/services", "", 1000, {2000}).status, 200);
}

TEST_F(AgentTest, MutationsReachTheKernelAndTheAuditLog) {
  const std::string backends = web_path_ + "/backends";
  const std::string b4 = backends + "/" + cli::encode_segment(b4_);
  HttpResponse added = call("POST", backends, json{{"address", b4_}, {"weight", 4}}.dump());
  ASSERT_EQ(added.status, 201) << added.body;
  auto index = dataplane_->backend_index(web_, *Endpoint::parse(b4_));
  ASSERT_TRUE(index);
  tg_backend value{};
  ASSERT_EQ(bpf_map_lookup_elem(datapath_->maps().backends.fd(), &*index, &value), 0);
  EXPECT_EQ(value.weight, 4u);
  EXPECT_EQ(value.state, TG_BACKEND_UP);

  HttpResponse drained = call("PATCH", b4, R"({"state": "draining"})");
  ASSERT_EQ(drained.status, 200) << drained.body;
  ASSERT_EQ(bpf_map_lookup_elem(datapath_->maps().backends.fd(), &*index, &value), 0);
  EXPECT_EQ(value.state, TG_BACKEND_DRAINING);
  EXPECT_EQ(value.weight, 4u);

  ASSERT_EQ(call("DELETE", b4).status, 200);
  EXPECT_FALSE(dataplane_->backend_index(web_, *Endpoint::parse(b4_)));
  ASSERT_EQ(bpf_map_lookup_elem(datapath_->maps().backends.fd(), &*index, &value), 0);
  EXPECT_EQ(value.state, TG_BACKEND_UNUSED);

  // The state file follows.
  auto stored = load_state(dir_ + "/state");
  ASSERT_TRUE(stored && stored->has_value());
  EXPECT_EQ((*stored)->desired, controller_->snapshot()->desired());

  std::vector<std::pair<std::string, std::string>> seen;
  for (const auto& line : audit_lines()) {
    if (line.contains("action")) seen.push_back({line["action"], line["result"]});
    if (line.contains("event")) seen.push_back({line["event"], line["after"]});
  }
  std::vector<std::pair<std::string, std::string>> expected = {
      {"backend_state", "up"},  {"backend_state", "up"},     {"backend_state", "up"},
      {"backend_state", "up"},  {"backend.add", "ok"},       {"backend_state", "draining"},
      {"backend.update", "ok"}, {"backend_state", "absent"}, {"backend.remove", "ok"}};
  EXPECT_EQ(seen, expected);
}

// The digest of the table the kernel holds: in the service list and in
// the metrics, the same.
TEST_F(AgentTest, TheTablesDigestIsListedAndInTheMetrics) {
  auto listed = call("GET", "/v1/services");
  ASSERT_EQ(listed.status, 200) << listed.body;
  const std::string digest = json::parse(listed.body).at(0).at("table_digest");
  EXPECT_EQ(digest, maglev_digest_text(dataplane_->slots(web_)->table_digest));
  auto metrics = api_->metrics();
  ASSERT_TRUE(metrics) << metrics.error().message;
  const std::string sample =
      fmt::format("\ntollgate_service_table_info{{service=\"{}\",scheduler=\"maglev\",digest=\"{}\"}} 1\n",
                  web_.to_string(), digest);
  EXPECT_NE(metrics->find(sample), std::string::npos) << *metrics;
}

// PATCH of a service's scheduler: into the kernel's tg_services entry, the
// listing, the metrics and the audit log; a bad one changes nothing.
TEST_F(AgentTest, TheSchedulerIsSetAuditedAndShown) {
  auto kernel_service = [this] {
    tg_service value{};
    EXPECT_TRUE(*datapath_->maps().services.lookup(web_.to_key(), value));
    return value;
  };
  ASSERT_EQ(kernel_service().algorithm, TG_ALGORITHM_MAGLEV);
  EXPECT_EQ(kernel_service().source_prefix, 32);

  HttpResponse set = call("PATCH", web_path_, R"({"scheduler": "source-hash", "source_prefix": 24})");
  ASSERT_EQ(set.status, 200) << set.body;
  EXPECT_EQ(json::parse(set.body), json::parse(R"({"scheduler": "source-hash", "source_prefix": 24,
                                                   "maglev_size": 65537})"));
  EXPECT_EQ(kernel_service().algorithm, TG_ALGORITHM_SOURCE_HASH);
  EXPECT_EQ(kernel_service().source_prefix, 24);
  const json listed = json::parse(call("GET", web_path_).body);
  EXPECT_EQ(listed["scheduler"], "source-hash");
  EXPECT_EQ(listed["source_prefix"], 24);
  auto metrics = api_->metrics();
  ASSERT_TRUE(metrics) << metrics.error().message;
  EXPECT_NE(metrics->find(
                fmt::format("tollgate_service_table_info{{service=\"{}\",scheduler=\"source-hash\"", web_.to_string())),
            std::string::npos)
      << *metrics;

  // Leaving source-hash, the prefix goes with it.
  set = call("PATCH", web_path_, R"({"scheduler": "round-robin"})");
  ASSERT_EQ(set.status, 200) << set.body;
  EXPECT_EQ(kernel_service().algorithm, TG_ALGORITHM_ROUND_ROBIN);
  EXPECT_FALSE(json::parse(call("GET", web_path_).body).contains("source_prefix"));

  const std::pair<const char*, const char*> refused[] = {
      {R"({"scheduler": "fastest"})", "'fastest' is not a scheduler"},
      {R"({"source_prefix": 24})", "only the source-hash scheduler has one"},
      {R"({"scheduler": "source-hash", "source_prefix": 33})", "out of range 1-32"},
      {R"({"maglev_size": 10})", "not a prime"},
      {R"({"weight": 2})", "weight: unknown field"},
      {R"({})", "nothing to change"},
  };
  for (const auto& [body, error] : refused) {
    HttpResponse response = call("PATCH", web_path_, body);
    EXPECT_EQ(response.status, 400) << body;
    EXPECT_NE(response.body.find(error), std::string::npos) << body << " -> " << response.body;
    EXPECT_EQ(kernel_service().algorithm, TG_ALGORITHM_ROUND_ROBIN) << body;
  }

  std::vector<json> updates;
  for (const auto& line : audit_lines())
    if (line.value("action", "") == "service.update") updates.push_back(line);
  ASSERT_EQ(updates.size(), 2u + std::size(refused));
  EXPECT_EQ(updates[0]["result"], "ok");
  EXPECT_EQ(updates[0]["before"]["scheduler"], "maglev");
  EXPECT_EQ(updates[0]["after"]["scheduler"], "source-hash");
  EXPECT_EQ(updates[1]["after"]["scheduler"], "round-robin");
  EXPECT_NE(updates[2]["result"], "ok");
}

// The flows the sweeper deletes are counted in the metrics.
TEST_F(AgentTest, SweptFlowsAreCountedInTheMetrics) {
  FlowSweeper sweeper(datapath_->maps(), std::chrono::milliseconds(20));
  Api api(*controller_, *audit_, AccessPolicy{}, AgentInfo{}, nullptr, nullptr, nullptr, &sweeper);
  auto before = api.metrics();
  ASSERT_TRUE(before) << before.error().message;
  EXPECT_NE(before->find("\ntollgate_flows_swept_total 0\n"), std::string::npos) << *before;
  PacketSpec syn = client_packet(kIpv4, 6);
  ASSERT_EQ(run(build_packet(syn)).verdict, XDP_REDIRECT);
  age_flow(kIpv4, syn, std::chrono::seconds(31));  // idle past the SYN timeout
  sweeper.start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (sweeper.swept() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  sweeper.stop();
  EXPECT_EQ(flow_count(), 0u);
  auto after = api.metrics();
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_NE(after->find("\ntollgate_flows_swept_total 1\n"), std::string::npos) << *after;
}

// --- pins and adoption ---------------------------------------------------

class AdoptionTest : public DataPathTest {
 protected:
  void SetUp() override {
    DataPathTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // A BPF filesystem of our own, in a mount namespace of our own: it
    // goes away with this test process.
    ASSERT_EQ(unshare(CLONE_NEWNS), 0) << std::strerror(errno);
    ASSERT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << std::strerror(errno);
    char pattern[] = "/tmp/tollgate-pin-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    mount_point_ = pattern;
    ASSERT_EQ(mount("bpf", mount_point_.c_str(), "bpf", 0, nullptr), 0) << std::strerror(errno);
    pin_dir_ = mount_point_ + "/tollgate";
  }
  void TearDown() override {
    if (mount_point_.empty()) return;
    umount(mount_point_.c_str());
    rmdir(mount_point_.c_str());
  }

  Result<std::unique_ptr<DataPath>> load(uint32_t flows = TG_FLOWS_DEFAULT, bool recreate = false) {
    LoadOptions options;
    options.flow_capacity = flows;
    options.pin_dir = pin_dir_;
    options.recreate = recreate;
    return DataPath::load(options);
  }

  int run_on(DataPath& datapath, const Bytes& packet, RunResult& result) {
    xdp_md context{};
    context.data_end = static_cast<uint32_t>(packet.size());
    context.ingress_ifindex = static_cast<uint32_t>(network_.client_ifindex);
    result = test_run(datapath.xdp_program_fd(), packet, &context, sizeof(context));
    return result.verdict;
  }

  std::string mount_point_, pin_dir_;
};

TEST_F(AdoptionTest, ARestartedAgentKeepsSlotsTablesAndFlows) {
  const ServiceSpec web = service_spec(kIpv4, 6, 3, {1, 2, 3});
  const ServiceSpec dns = service_spec(kIpv6, 17, 2);
  std::map<Endpoint, uint32_t> indexes;
  std::vector<uint32_t> table;
  PacketSpec syn = client_packet(kIpv4, 6, 41000);
  RunResult first;
  {
    auto datapath = load();
    ASSERT_TRUE(datapath) << datapath.error().message;
    EXPECT_FALSE((*datapath)->adopted());
    Dataplane dataplane((*datapath)->maps());
    ASSERT_TRUE(dataplane.set_timeouts(FlowTimeouts{}));
    ASSERT_TRUE(dataplane.apply_service(web));
    ASSERT_TRUE(dataplane.apply_service(dns));
    // A removed backend leaves a slot with a generation behind.
    ServiceSpec smaller = dns;
    smaller.backends.pop_back();
    ASSERT_TRUE(dataplane.apply_service(smaller));
    ASSERT_TRUE(dataplane.apply_service(dns));
    for (const auto& backend : web.backends)
      indexes[backend.endpoint] = *dataplane.backend_index(web.address, backend.endpoint);
    table = *dataplane.active_table(web.address);
    ASSERT_EQ(run_on(**datapath, build_packet(syn), first), XDP_REDIRECT) << verdict_name(first.verdict);
    // What a crash in the middle of a change leaves: an endpoint no
    // service has.
    tg_backend_endpoint stale{};
    stale.addr[0] = htonl(0xc6120163);  // 198.18.1.99
    stale.port = htons(8080);
    stale.family = TG_FAMILY_IPV4;
    stale.protocol = 6;
    tg_endpoint_services holders{};
    holders.count = 1;
    ASSERT_EQ(bpf_map_update_elem((*datapath)->maps().backend_endpoints.fd(), &stale, &holders, BPF_ANY), 0);
  }  // the agent dies: its fds close, the pins stay

  auto datapath = load();
  ASSERT_TRUE(datapath) << datapath.error().message;
  EXPECT_TRUE((*datapath)->adopted());
  Dataplane dataplane((*datapath)->maps());
  ASSERT_TRUE(dataplane.adopt());
  auto specs = dataplane.service_specs();
  ASSERT_EQ(specs.size(), 2u);
  auto sorted = [](std::vector<BackendSpec> list) {
    std::sort(list.begin(), list.end(), [](auto& a, auto& b) { return a.endpoint < b.endpoint; });
    return list;
  };
  for (const auto& expected : {web, dns}) {
    const ServiceSpec* found = dataplane.service_spec(expected.address);
    ASSERT_NE(found, nullptr) << expected.address.to_string();
    EXPECT_EQ(found->maglev_size, expected.maglev_size);
    EXPECT_EQ(sorted(found->backends), sorted(expected.backends)) << expected.address.to_string();
  }
  for (const auto& [endpoint, index] : indexes) EXPECT_EQ(dataplane.backend_index(web.address, endpoint), index);
  EXPECT_EQ(*dataplane.active_table(web.address), table);
  // The backends' endpoints, counted again: the stale one went.
  EXPECT_EQ(map_entries((*datapath)->maps().backend_endpoints), 5u);

  // The flow is still there and keeps its backend, also once the same
  // specs are applied again (what a restart's reconcile does).
  for (const auto& spec : {web, dns}) ASSERT_TRUE(dataplane.apply_service(spec));
  for (const auto& [endpoint, index] : indexes) EXPECT_EQ(dataplane.backend_index(web.address, endpoint), index);
  PacketSpec ack = syn;
  ack.tcp_flags = kTcpAck;
  RunResult again;
  ASSERT_EQ(run_on(**datapath, build_packet(ack), again), XDP_REDIRECT) << verdict_name(again.verdict);
  // Ethernet and IPv4 headers (the backend's MAC and address) as before;
  // only the TCP flags and checksum differ.
  ASSERT_GE(again.data.size(), 34u);
  EXPECT_EQ(Bytes(again.data.begin(), again.data.begin() + 34), Bytes(first.data.begin(), first.data.begin() + 34))
      << "the flow went to another backend after the restart";
}

TEST_F(AdoptionTest, AnAbiMismatchIsAClearErrorOrARecreate) {
  {
    auto datapath = load();
    ASSERT_TRUE(datapath) << datapath.error().message;
    Dataplane dataplane((*datapath)->maps());
    ASSERT_TRUE(dataplane.apply_service(service_spec(kIpv4, 6, 2)));
    tg_config config{};
    config.abi_version = 99;
    uint32_t zero = 0;
    ASSERT_EQ(bpf_map_update_elem((*datapath)->maps().config.fd(), &zero, &config, BPF_ANY), 0);
  }
  auto refused = load();
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("ABI version 99"), std::string::npos) << refused.error().message;
  EXPECT_NE(refused.error().message.find("--recreate"), std::string::npos) << refused.error().message;

  auto recreated = load(TG_FLOWS_DEFAULT, /*recreate=*/true);
  ASSERT_TRUE(recreated) << recreated.error().message;
  EXPECT_FALSE((*recreated)->adopted());
  Dataplane dataplane((*recreated)->maps());
  ASSERT_TRUE(dataplane.adopt());
  EXPECT_TRUE(dataplane.service_specs().empty());
}

TEST_F(AdoptionTest, PinsThatDoNotFitThisBuildAreAClearError) {
  {
    auto datapath = load();
    ASSERT_TRUE(datapath) << datapath.error().message;
    Dataplane dataplane((*datapath)->maps());
    ASSERT_TRUE(dataplane.set_timeouts(FlowTimeouts{}));
  }
  auto refused = load(1024);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("--flow-capacity"), std::string::npos) << refused.error().message;

  ASSERT_TRUE(DataPath::remove_pins(pin_dir_));
  EXPECT_FALSE(std::filesystem::exists(pin_dir_));

  LoadOptions options;
  options.pin_dir = "/tmp/tollgate-not-bpffs-" + std::to_string(getpid());
  auto elsewhere = DataPath::load(options);
  std::filesystem::remove_all("/tmp/tollgate-not-bpffs-" + std::to_string(getpid()));
  ASSERT_FALSE(elsewhere);
  EXPECT_NE(elsewhere.error().message.find("not on a BPF filesystem"), std::string::npos) << elsewhere.error().message;
}

}  // namespace
}  // namespace tollgate::test
