#include "state.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tollgate {
namespace {

using nlohmann::json;

constexpr int kStateVersion = 1;

std::string state_path(const std::string& dir) { return dir + "/state.json"; }

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
  if (error) return make_error("cannot create state directory {}: {}", dir, error.message());
  json document = {{"version", kStateVersion},
                   {"config", config_to_json(state.desired)},
                   {"config_digest", state.config_digest},
                   {"interfaces", {{"xdp", state.xdp_interfaces}, {"tc", state.tc_interfaces}}}};
  return write_file_atomically(state_path(dir), document.dump(2) + "\n");
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
  json document = json::parse(buffer.str(), nullptr, false);
  if (document.is_discarded() || !document.is_object())
    return make_error("state file {}: not a JSON object (move it away to start from the kernel's state)", path);
  if (document.value("version", 0) != kStateVersion)
    return make_error("state file {}: version {} is not {}", path, document.value("version", 0), kStateVersion);
  AgentState state;
  if (!document.contains("config")) return make_error("state file {}: config: missing", path);
  auto config = parse_config_json(document["config"]);
  if (!config) return make_error("state file {}: config.{}", path, config.error().message);
  state.desired = std::move(*config);
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
