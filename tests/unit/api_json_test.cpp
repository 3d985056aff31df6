// The API on the fake data plane fed what a JSON reader cannot hold:
// numbers beyond a double or the field's type, invalid UTF-8 in paths and
// bodies, a byte-order mark, deep nesting. Each is a named 400, never an
// abort, and the service stays as it was. And the two rules about
// changing nothing or everything: an empty PATCH, a config that empties.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "fake_dataplane.h"
#include "hostile_json.h"

namespace tollgate::test {
namespace {

const std::string kService = "/v1/services/198.18.100.1%3A80%2Ftcp";
const std::string kBackends = kService + "/backends";
const std::string kBackend = kBackends + "/198.18.1.10%3A8080";

class ApiJsonTest : public ApiOnFakeTest {
 protected:
  // Calls, and checks the answer is `status`, JSON, with an error that has `error` in it.
  void expect_refused(const std::string& method, const std::string& path, const std::string& body, int status,
                      const std::string& error, const std::string& query = "") {
    SCOPED_TRACE(fmt::format("{} {} {}", method, path, body.substr(0, 80)));
    HttpResponse response = call(method, path, body, query);
    EXPECT_EQ(response.status, status) << response.body;
    auto answer = json::parse(response.body, nullptr, false);
    ASSERT_TRUE(answer.is_object()) << response.body;
    ASSERT_TRUE(answer["error"].is_string()) << response.body;
    EXPECT_NE(answer["error"].get<std::string>().find(error), std::string::npos) << response.body;
  }
  void expect_unchanged() {
    ASSERT_EQ(fake_.services.size(), 1u);
    const ServiceSpec& spec = fake_.services.begin()->second;
    EXPECT_EQ(spec, service(1, 2));
  }
  std::vector<std::string> audit_lines() const {
    std::ifstream file(dir_ + "/audit.log");
    std::vector<std::string> lines;
    for (std::string line; std::getline(file, line);) lines.push_back(line);
    return lines;
  }
  // Audit entries of `action` with `result`.
  size_t audited(const std::string& action, const std::string& result) const {
    size_t count = 0;
    for (const auto& line : audit_lines()) {
      auto entry = json::parse(line, nullptr, false);
      count += entry.is_object() && entry.value("action", "") == action && entry.value("result", "") == result;
    }
    return count;
  }
};

// Each route that takes a body, and one of its unsigned fields.
struct Body {
  std::string method, path;
  std::string (*with)(const std::string& number);  // the body with `number` in that field
  std::string field;                               // as the error names it
};

const Body kBodies[] = {
    {"POST", "/v1/services",
     [](const std::string& n) { return fmt::format(R"({{"address": "198.18.100.9:80/tcp", "maglev_size": {}}})", n); },
     "maglev_size"},
    {"PUT", "/v1/config",
     [](const std::string& n) {
       return fmt::format(R"({{"services": [{{"address": "198.18.100.1:80/tcp", "backends": [)"
                          R"({{"address": "198.18.1.10:8080", "weight": {}}}]}}]}})",
                          n);
     },
     "services[0].backends[0].weight"},
    {"PUT", "/v1/policy/access", [](const std::string& n) { return fmt::format(R"({{"allow": [{}]}})", n); },
     "allow[0]"},
    {"PUT", kService + "/policy",
     [](const std::string& n) { return fmt::format(R"({{"rate_limit": {{"ipv4_prefix": {}}}}})", n); },
     "rate_limit.ipv4_prefix"},
    {"POST", kBackends,
     [](const std::string& n) { return fmt::format(R"({{"address": "198.18.1.20:8080", "weight": {}}})", n); },
     "weight"},
    {"PATCH", kBackend, [](const std::string& n) { return fmt::format(R"({{"weight": {}}})", n); }, "weight"},
};

TEST_F(ApiJsonTest, NumbersBeyondADoubleAreANamedBadRequest) {
  for (const auto& body : kBodies)
    for (const std::string& number : {std::string("1e400"), std::string("-1e400"), huge_integer()}) {
      expect_refused(body.method, body.path, body.with(number), 400,
                     fmt::format("{}: {}", body.field, number.substr(0, 5)));
      expect_refused(body.method, body.path, body.with(number), 400, "beyond the range of a number");
    }
  expect_unchanged();
}

TEST_F(ApiJsonTest, NumbersBeyondTheFieldsTypeAreANamedBadRequest) {
  for (const auto& body : kBodies) {
    if (body.path == "/v1/policy/access") continue;  // a list of CIDRs: no number fits
    for (const std::string& number :
         {std::string("-1"), std::string(kTwoToThe64), std::string("4294967296"), std::string("1.5")})
      expect_refused(body.method, body.path, body.with(number), 400, body.field + ": ");
  }
  expect_unchanged();
}

TEST_F(ApiJsonTest, InvalidUtf8InAPathIsABadRequestInJson) {
  for (const std::string& path : {kService.substr(0, 13) + "%FF", kService.substr(0, 13) + "%C0%AF",
                                  kService.substr(0, 13) + "\xff", kBackends + "/%FF", kBackends + "/\xc3"}) {
    expect_refused("GET", path, "", 400, "");
    expect_refused("DELETE", path, "", 400, "");
  }
  expect_refused("GET", "/v1/\xff\xfe", "", 404, "no such endpoint");
  expect_refused("GET", "/\xff", "", 404, "no such endpoint");
  expect_refused("POST", "/v1/status\xff", "", 404, "no such endpoint");
  expect_unchanged();
  // The audit log still reads as JSON lines.
  for (const auto& line : audit_lines()) EXPECT_TRUE(json::accept(line)) << line;
}

TEST_F(ApiJsonTest, InvalidUtf8InABodyIsABadRequest) {
  for (const auto& body : kBodies) {
    std::string text = body.with("1");
    text.insert(text.find('{') + 1, "\"\xff\xfe\": 1, ");
    expect_refused(body.method, body.path, text, 400, "ill-formed UTF-8");
  }
  expect_refused("POST", kBackends, "{\"address\": \"198.18.1.20:8080\xc0\xaf\"}", 400, "line 1, column");
  expect_unchanged();
}

TEST_F(ApiJsonTest, AByteOrderMarkIsABadRequest) {
  for (const auto& body : kBodies)
    expect_refused(body.method, body.path, kByteOrderMark + body.with("1"), 400, "byte-order mark");
  expect_refused("PUT", "/v1/config", std::string(kByteOrderMark) + "{}", 400, "byte-order mark");
  expect_refused("PUT", "/v1/config", std::string(kByteOrderMark) + "{}", 400, "byte-order mark", "allow_empty=true");
  expect_unchanged();
}

TEST_F(ApiJsonTest, DeepNestingIsABadRequest) {
  for (const auto& body : kBodies) {
    expect_refused(body.method, body.path, body.with(deep_array()), 400, "nested deeper than");
    expect_refused(body.method, body.path, std::string(100000, '['), 400, "nested deeper than");
  }
  expect_refused("PUT", kService + "/policy", "{\"allow\": " + deep_array() + "}", 400, "allow[0][0][0]");
  expect_refused("PUT", kService + "/policy", "{\"allow\": " + deep_array() + "}", 400, "nested deeper than 64 levels");
  expect_unchanged();
}

TEST_F(ApiJsonTest, AnEmptyPatchChangesNothingAndIsRefused) {
  expect_refused("PATCH", kBackend, "{}", 400, "nothing to change");
  expect_refused("PATCH", kBackend, " { } ", 400, "nothing to change");
  expect_unchanged();
  EXPECT_EQ(audited("backend.update", "ok"), 0u);
  EXPECT_EQ(audited("backend.update", "invalid"), 2u);
  EXPECT_EQ(call("PATCH", kBackend, R"({"weight": 3})").status, 200);
  EXPECT_EQ(audited("backend.update", "ok"), 1u);
}

TEST_F(ApiJsonTest, AConfigThatRemovesEveryServiceNeedsAllowEmpty) {
  for (const std::string& body :
       {std::string("{}"), std::string(R"({"services": []})"), std::string(R"({"timeouts": {"udp": 30}})")})
    expect_refused("PUT", "/v1/config", body, 409, "allow_empty=true");
  expect_refused("PUT", "/v1/config", "{}", 400, "allow_empty: expected true or false", "allow_empty=yes");
  expect_unchanged();
  // Said so: applied.
  HttpResponse emptied = call("PUT", "/v1/config", "{}", "allow_empty=true");
  EXPECT_EQ(emptied.status, 200) << emptied.body;
  EXPECT_TRUE(fake_.services.empty());
  // With nothing to remove, an empty config needs no flag.
  EXPECT_EQ(call("PUT", "/v1/config", "{}").status, 200);
  // A config with services needs none either.
  const std::string one = R"({"services": [{"address": "198.18.100.1:80/tcp"}]})";
  EXPECT_EQ(call("PUT", "/v1/config", one).status, 200);
  EXPECT_EQ(call("PUT", "/v1/config", one, "allow_empty=false").status, 200);
  EXPECT_EQ(fake_.services.size(), 1u);
}

}  // namespace
}  // namespace tollgate::test
