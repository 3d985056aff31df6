// What the verbs share (the session, validators, paths, tables) and run():
// the app, each verb group's subcommands, parsing and dispatch.
#include "cli.h"

#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "address.h"
#include "commands.h"
#include "defaults.h"
#include "json_text.h"
#include "policy.h"

namespace tollgate::cli {

CLI::Validator service_validator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        auto address = ServiceAddress::parse(text);
        return address ? std::string() : address.error().message;
      },
      "SERVICE", "service address");
}

CLI::Validator cidr_validator() {
  return CLI::Validator(
      [](std::string& text) {
        auto parsed = Cidr::parse(text);
        return parsed ? std::string() : parsed.error().message;
      },
      "CIDR");
}

CLI::Validator backend_validator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        auto endpoint = Endpoint::parse(text);
        if (!endpoint) return endpoint.error().message;
        if (endpoint->port == 0) return "port 0 is not a backend port";
        return {};
      },
      "BACKEND", "backend address");
}

void add_output_option(CLI::App* command, Session& session) {
  command->add_option("-o,--output", session.output, "table (default) or json")
      ->check(CLI::IsMember({"table", "json"}));
}

void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i)
      line += i + 1 == row.size() ? row[i] : fmt::format("{:<{}}  ", row[i], widths[i]);
    out << line << "\n";
  }
}

std::string text_of(const json& value) { return value.is_string() ? value.get<std::string>() : dump_json(value); }

std::optional<json> Session::call(const std::string& method, const std::string& path, const json& body) {
  auto reply = connect(socket_path)(method, path, body.is_null() ? std::string() : dump_json(body));
  if (!reply) {
    err << "tollgate: cannot reach tollgated at " << socket_path << ": " << reply.error().message
        << " — is tollgated running? --socket or TOLLGATE_SOCKET selects another\n";
    return std::nullopt;
  }
  auto document = parse_json_text(reply->body);
  if (reply->status >= 400) {
    std::string message =
        document && document->is_object() && document->contains("error") ? text_of((*document)["error"]) : reply->body;
    err << "tollgate: " << message << " (HTTP " << reply->status << ")\n";
    return std::nullopt;
  }
  if (!document) {
    err << "tollgate: the agent answered with something that is not JSON: " << document.error().message << "\n";
    return std::nullopt;
  }
  return std::move(*document);
}

std::string service_path(const std::string& service) {
  return "/v1/services/" + encode_segment(ServiceAddress::parse(service)->to_string());
}
std::string backend_path(const std::string& service, const std::string& backend) {
  return service_path(service) + "/backends/" + encode_segment(Endpoint::parse(backend)->to_string());
}

std::string encode_segment(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
      out.push_back(static_cast<char>(c));
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

Transport unix_socket_transport(const std::string& socket_path) {
  return [socket_path](const std::string& method, const std::string& path, const std::string& body) -> Result<Reply> {
    httplib::Client client(socket_path);
    client.set_address_family(AF_UNIX);
    client.set_connection_timeout(5);
    client.set_read_timeout(60);
    client.set_write_timeout(10);
    const char* type = "application/json";
    auto send = [&]() {
      if (method == "POST") return client.Post(path.c_str(), body, type);
      if (method == "PUT") return client.Put(path.c_str(), body, type);
      if (method == "PATCH") return client.Patch(path.c_str(), body, type);
      if (method == "DELETE") return client.Delete(path.c_str());
      return client.Get(path.c_str());
    };
    httplib::Result result = send();
    if (!result) {
      // connect(2) refused for the file's mode (0660): say so, where
      // httplib says only "Connection".
      if (result.error() == httplib::Error::Connection && access(socket_path.c_str(), W_OK) != 0 && errno == EACCES)
        return make_error("permission denied: the socket is root's and its group's only (tollgated --api-group)");
      return make_error("{}", httplib::to_string(result.error()));
    }
    return Reply{result->status, result->body};
  };
}

namespace {

// The verb groups, in the order `tollgate --help` lists their commands.
constexpr void (*kCommandGroups[])(CLI::App&, Dispatch&) = {
    register_service_commands,   register_backend_commands, register_status_commands,
    register_conntrack_commands, register_policy_commands,  register_events_commands,
};

}  // namespace

int run(int argc, const char* const* argv, const std::function<Transport(const std::string&)>& connect,
        std::ostream& out, std::ostream& err) {
  const char* socket_from_environment = std::getenv("TOLLGATE_SOCKET");
  Session session{socket_from_environment && *socket_from_environment ? socket_from_environment : kDefaultSocketPath,
                  "table", connect, out, err};
  CLI::App app{
      "tollgate: control the tollgate L4 load balancer through tollgated's API.\n"
      "Example: tollgate backend add 198.18.100.1:80/tcp 198.18.1.11:8080 --weight 2"};
  app.name("tollgate");
  app.set_version_flag("--version", std::string("tollgate ") + TOLLGATE_VERSION);
  app.add_option("--socket", session.socket_path,
                 "tollgated's API socket (default $TOLLGATE_SOCKET, else /run/tollgate/tollgate.sock)");
  Dispatch dispatch(session);
  for (auto register_commands : kCommandGroups) register_commands(app, dispatch);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    int code = app.exit(error, out, err);
    return code == 0 ? 0 : 2;
  }
  if (!dispatch.chosen()) {
    // A command without its verb: name the level and what it takes.
    CLI::App* level = &app;
    while (!level->get_subcommands().empty()) level = level->get_subcommands().front();
    std::vector<std::string> verbs;
    for (const auto* sub : level->get_subcommands({})) verbs.push_back(sub->get_name());
    err << fmt::format("{}: a subcommand is required: {}\nRun with --help for more information.\n",
                       level == &app ? "tollgate" : level->get_name(), fmt::join(verbs, ", "));
    return 2;
  }
  // The verbs read the agent's answers with nlohmann's accessors, which
  // throw on a shape they did not expect (an object where an array was):
  // said so, exit 1, never an abort.
  try {
    return dispatch.run_chosen();
  } catch (const json::exception& error) {
    err << "tollgate: unexpected answer from the agent: " << error.what() << "\n";
    return 1;
  }
}

}  // namespace tollgate::cli
