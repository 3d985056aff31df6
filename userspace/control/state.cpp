#include "state.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "json_text.h"

namespace tollgate {
namespace {

using nlohmann::json;

constexpr int kStateVersion = 1;

std::string state_path(const std::string& dir) { return dir + "/state.json"; }
std::string journal_path(const std::string& dir) { return dir + "/state.journal"; }

// Past this the journal is folded into a new state.json.
constexpr off_t kMaxJournalBytes = 4 << 20;

// Names one state.json and the journal that belongs to it: a journal left
// from an earlier state.json (a crash between the two writes) is ignored.
std::string new_journal_id() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return fmt::format("{:x}-{:x}", std::chrono::duration_cast<std::chrono::nanoseconds>(now).count(), getpid());
}

Status write_all(int fd, std::string_view content, const std::string& path) {
  size_t written = 0;
  while (written < content.size()) {
    ssize_t n = write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error(ErrorKind::io, errno, "cannot write {}: {}", path, std::strerror(errno));
    written += static_cast<size_t>(n);
  }
  return {};
}

// The backends of `after` that differ from `before`, when nothing else does
// (the same endpoints in the same order, the same service settings).
std::optional<std::vector<const BackendSpec*>> changed_backends(const ServiceSpec* before, const ServiceSpec& after) {
  if (!before || before->backends.size() != after.backends.size()) return std::nullopt;
  ServiceSpec rest = *before;
  rest.backends = after.backends;
  if (!(rest == after)) return std::nullopt;
  std::vector<const BackendSpec*> changed;
  for (size_t i = 0; i < after.backends.size(); ++i) {
    if (before->backends[i].endpoint != after.backends[i].endpoint) return std::nullopt;
    if (!(before->backends[i] == after.backends[i])) changed.push_back(&after.backends[i]);
  }
  return changed;
}

// A "backends" record: those backends of the service, as they are now.
Status replay_backends(const json& record, Config& config) {
  if (!record.is_object() || !record.contains("service") || !record["service"].is_string() || !record.contains("set") ||
      !record["set"].is_array())
    return make_error(ErrorKind::io, "expected {{\"service\": ..., \"set\": [...]}}");
  auto address = ServiceAddress::parse(record["service"].get<std::string>());
  if (!address) return address.error();
  auto service = std::find_if(config.services.begin(), config.services.end(),
                              [&](const ServiceSpec& spec) { return spec.address == *address; });
  if (service == config.services.end())
    return make_error(ErrorKind::io, "service {} is not in the state", address->to_string());
  for (const auto& entry : record["set"]) {
    auto backend = parse_backend_json(entry, "set");
    if (!backend) return backend.error();
    auto slot = std::find_if(service->backends.begin(), service->backends.end(),
                             [&](const BackendSpec& spec) { return spec.endpoint == backend->endpoint; });
    if (slot == service->backends.end())
      return make_error(ErrorKind::io, "backend {} is not in service {}", backend->endpoint.to_string(),
                        address->to_string());
    *slot = std::move(*backend);
  }
  return {};
}

// Applies the journal's records to `config`. A last line without its
// newline was cut by a crash and is ignored; any other bad line is an error.
Status replay_journal(const std::string& path, const std::string& id, Config& config) {
  std::ifstream file(path);
  if (!file) return {};  // none yet
  std::string line;
  if (!std::getline(file, line)) return {};
  auto header = parse_json_text(line);
  if (!header || !header->is_object() || !header->contains("journal") || (*header)["journal"] != id)
    return {};  // an older state's
  size_t number = 1;
  while (std::getline(file, line)) {
    ++number;
    const bool whole = !file.eof();
    auto parsed = parse_json_text(line);
    if (!parsed && !whole) break;
    if (!parsed) {
      // A record is one line: its "line 1, column C" is this line's column.
      std::string_view message = parsed.error().message;
      if (message.starts_with("line 1, ")) message.remove_prefix(std::string_view("line 1, ").size());
      return make_error(ErrorKind::io, "state journal {}: line {}, {}", path, number, message);
    }
    const json& record = *parsed;
    if (!record.is_object())
      return make_error(ErrorKind::io, "state journal {}: line {}: not a JSON object", path, number);
    if (record.contains("set")) {
      auto service = parse_service_json(record["set"], "set");
      if (!service)
        return make_error(ErrorKind::io, "state journal {}: line {}: {}", path, number, service.error().message);
      auto found = std::find_if(config.services.begin(), config.services.end(),
                                [&](const ServiceSpec& spec) { return spec.address == service->address; });
      if (found != config.services.end())
        *found = std::move(*service);
      else
        config.services.push_back(std::move(*service));
    } else if (record.contains("remove") && record["remove"].is_string()) {
      auto address = ServiceAddress::parse(record["remove"].get<std::string>());
      if (!address)
        return make_error(ErrorKind::io, "state journal {}: line {}: {}", path, number, address.error().message);
      std::erase_if(config.services, [&](const ServiceSpec& spec) { return spec.address == *address; });
    } else if (record.contains("backends")) {
      if (auto status = replay_backends(record["backends"], config); !status)
        return make_error(ErrorKind::io, "state journal {}: line {}: backends: {}", path, number,
                          status.error().message);
    } else {
      return make_error(ErrorKind::io, "state journal {}: line {}: expected set, backends or remove", path, number);
    }
  }
  return {};
}

Status sync_and_close(int fd, const std::string& path) {
  bool synced = fsync(fd) == 0;
  int saved = errno;
  close(fd);
  if (!synced) return make_error("cannot fsync {}: {}", path, std::strerror(saved));
  return {};
}

Result<std::vector<std::string>> string_list(const json& object, const char* field) {
  std::vector<std::string> list;
  if (!object.contains(field)) return list;
  const json& value = object[field];
  if (!value.is_array()) return make_error("interfaces.{}: expected an array", field);
  for (const auto& entry : value) {
    if (!entry.is_string()) return make_error("interfaces.{}: expected strings", field);
    list.push_back(entry.get<std::string>());
  }
  return list;
}

}  // namespace

Status write_file_atomically(const std::string& path, std::string_view content) {
  const std::string temporary = path + ".tmp";
  int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return make_error("cannot write {}: {}", temporary, std::strerror(errno));
  size_t written = 0;
  while (written < content.size()) {
    ssize_t n = write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int saved = errno;
      close(fd);
      return make_error("cannot write {}: {}", temporary, std::strerror(saved));
    }
    written += static_cast<size_t>(n);
  }
  if (auto status = sync_and_close(fd, temporary); !status) return status;
  if (rename(temporary.c_str(), path.c_str()) != 0)
    return make_error("cannot rename {} to {}: {}", temporary, path, std::strerror(errno));
  const std::string dir = std::filesystem::path(path).parent_path().string();
  int dir_fd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return make_error("cannot open {}: {}", dir, std::strerror(errno));
  return sync_and_close(dir_fd, dir);
}

Status save_state(const std::string& dir, const AgentState& state) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return make_error(ErrorKind::io, "cannot create state directory {}: {}", dir, error.message());
  const std::string id = new_journal_id();
  json document = {{"version", kStateVersion},
                   {"config", config_to_json(state.desired)},
                   {"config_digest", state.config_digest},
                   {"interfaces", {{"xdp", state.xdp_interfaces}, {"tc", state.tc_interfaces}}},
                   {"journal", id}};
  if (auto status = write_file_atomically(state_path(dir), dump_json(document) + "\n"); !status) return status;
  // The new state's journal, empty; until it is in place the old one is
  // ignored (its id is not the new state's).
  return write_file_atomically(journal_path(dir), dump_json(json{{"journal", id}}) + "\n");
}

Status save_service_change(const std::string& dir, const ServiceAddress& address, const ServiceSpec* before,
                           const ServiceSpec* after, const std::function<AgentState()>& whole) {
  struct stat info {};
  if (stat(journal_path(dir).c_str(), &info) != 0 || info.st_size > kMaxJournalBytes) return save_state(dir, whole());
  json record;
  if (!after) {
    record = {{"remove", address.to_string()}};
  } else if (auto changed = changed_backends(before, *after)) {
    json backends = json::array();
    for (const BackendSpec* backend : *changed) backends.push_back(backend_to_json(*backend));
    record = {{"backends", {{"service", address.to_string()}, {"set", std::move(backends)}}}};
  } else {
    record = {{"set", service_to_json(*after)}};
  }
  const std::string path = journal_path(dir);
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return errno_error(ErrorKind::io, errno, "cannot open {}: {}", path, std::strerror(errno));
  if (auto status = write_all(fd, dump_json(record) + "\n", path); !status) {
    close(fd);
    return status;
  }
  if (fdatasync(fd) != 0) {
    int saved = errno;
    close(fd);
    return errno_error(ErrorKind::io, saved, "cannot fsync {}: {}", path, std::strerror(saved));
  }
  close(fd);
  return {};
}

Result<std::optional<AgentState>> load_state(const std::string& dir) {
  const std::string path = state_path(dir);
  std::ifstream file(path);
  if (!file) {
    if (errno == ENOENT) return std::optional<AgentState>();
    return make_error("cannot read state file {}: {}", path, std::strerror(errno));
  }
  std::stringstream buffer;
  buffer << file.rdbuf();
  auto parsed = parse_json_text(buffer.str());
  if (!parsed)
    return make_error("state file {}: {} (move it away to start from the kernel's state)", path,
                      parsed.error().message);
  json& document = *parsed;
  if (!document.is_object())
    return make_error("state file {}: not a JSON object (move it away to start from the kernel's state)", path);
  if (!document.contains("version") || !document["version"].is_number_unsigned() ||
      document["version"].get<uint64_t>() != static_cast<uint64_t>(kStateVersion))
    return make_error("state file {}: version: expected {}, found {}", path, kStateVersion,
                      document.contains("version") ? dump_json(document["version"]) : "none");
  AgentState state;
  if (!document.contains("config")) return make_error("state file {}: config: missing", path);
  auto config = parse_config_json(document["config"]);
  if (!config) return make_error("state file {}: config.{}", path, config.error().message);
  state.desired = std::move(*config);
  if (document.contains("journal") && document["journal"].is_string())
    if (auto status = replay_journal(journal_path(dir), document["journal"].get<std::string>(), state.desired); !status)
      return status.error();
  if (document.contains("config_digest") && document["config_digest"].is_string())
    state.config_digest = document["config_digest"].get<std::string>();
  if (document.contains("interfaces")) {
    const json& interfaces = document["interfaces"];
    if (!interfaces.is_object()) return make_error("state file {}: interfaces: expected an object", path);
    auto xdp = string_list(interfaces, "xdp");
    if (!xdp) return make_error("state file {}: {}", path, xdp.error().message);
    auto tc = string_list(interfaces, "tc");
    if (!tc) return make_error("state file {}: {}", path, tc.error().message);
    state.xdp_interfaces = std::move(*xdp);
    state.tc_interfaces = std::move(*tc);
  }
  return std::optional<AgentState>(std::move(state));
}

}  // namespace tollgate
