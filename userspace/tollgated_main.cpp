// tollgated: loads the data path, attaches it, and keeps its maps in step
// with the configuration file.
//
// Signals: SIGHUP re-reads the configuration (validated whole; a bad file
// changes nothing), SIGUSR1 writes a stats snapshot, SIGINT/SIGTERM detach
// and exit.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "dataplane.h"
#include "loader.h"
#include "log.h"
#include "reconcile.h"

using namespace tollgate;

namespace {

struct Options {
  std::vector<std::string> client_interfaces;
  std::vector<std::string> backend_interfaces;
  std::string config_path;
  std::string stats_path;
  bool generic = false;
  uint32_t flow_capacity = TG_FLOWS_DEFAULT;
};

// Write aside, then rename: a reader never sees half a file.
Status write_file_atomically(const std::string& path, const std::string& content) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream file(temporary, std::ios::trunc);
    if (!file) return make_error("cannot write {}: {}", temporary, std::strerror(errno));
    file << content;
    if (!file.flush()) return make_error("cannot write {}: {}", temporary, std::strerror(errno));
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) return make_error("cannot rename {} to {}: {}", temporary, path, error.message());
  return {};
}

Status apply_config_file(Dataplane& dataplane, const std::string& path) {
  auto config = load_config_file(path);
  if (!config) return config.error();
  if (auto status = reconcile(dataplane, *config); !status) return status;
  log::info("configuration {} applied: {} services", path, config->services.size());
  return {};
}

class Attachments {
 public:
  explicit Attachments(DataPath& datapath) : datapath_(datapath) {}
  ~Attachments() {
    for (const auto& attachment : xdp_)
      if (auto status = datapath_.detach_xdp(attachment); !status) log::error("{}", status.error().message);
    for (const auto& attachment : tc_)
      if (auto status = datapath_.detach_tc(attachment); !status) log::error("{}", status.error().message);
    if (!xdp_.empty() || !tc_.empty()) log::info("detached from {} interfaces", xdp_.size() + tc_.size());
  }

  Status attach(const Options& options) {
    const XdpMode mode = options.generic ? XdpMode::generic : XdpMode::native;
    if (options.generic) log::warn("generic XDP asked for: it runs after the kernel allocates an skb, far slower");
    for (const auto& interface : options.client_interfaces) {
      auto attachment = datapath_.attach_xdp(interface, mode);
      if (!attachment) return attachment.error();
      log::info("attached XDP program {} to {} (ifindex {}, {} mode): client side", attachment->program_id, interface,
                attachment->ifindex, xdp_mode_name(mode));
      xdp_.push_back(*attachment);
    }
    for (const auto& interface : options.backend_interfaces) {
      auto attachment = datapath_.attach_tc(interface);
      if (!attachment) return attachment.error();
      log::info("attached TC program {} to {} (ifindex {}, ingress): backend side", attachment->program_id, interface,
                attachment->ifindex);
      tc_.push_back(*attachment);
    }
    return {};
  }

 private:
  DataPath& datapath_;
  std::vector<XdpAttachment> xdp_;
  std::vector<TcAttachment> tc_;
};

int run(const Options& options) {
  sigset_t signals;
  sigemptyset(&signals);
  for (int signal_number : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&signals, signal_number);
  sigprocmask(SIG_BLOCK, &signals, nullptr);

  auto datapath = DataPath::load(LoadOptions{options.flow_capacity});
  if (!datapath) {
    log::error("{}", datapath.error().message);
    return 1;
  }
  Dataplane dataplane((*datapath)->maps());
  if (auto status = dataplane.set_timeouts(FlowTimeouts{}); !status) {
    log::error("{}", status.error().message);
    return 1;
  }
  if (!options.config_path.empty()) {
    if (auto status = apply_config_file(dataplane, options.config_path); !status) {
      log::error("{}", status.error().message);
      return 1;
    }
  }
  log::info("data path loaded: XDP program {}, TC program {}, flow table {} entries", (*datapath)->xdp_program_id(),
            (*datapath)->tc_program_id(), options.flow_capacity);

  Attachments attachments(**datapath);
  if (auto status = attachments.attach(options); !status) {
    log::error("{}", status.error().message);
    return 1;
  }
  log::info("ready");

  for (;;) {
    int received = 0;
    sigwait(&signals, &received);
    if (received == SIGHUP) {
      if (options.config_path.empty()) {
        log::warn("SIGHUP: no --config file to re-read");
      } else if (auto status = apply_config_file(dataplane, options.config_path); !status) {
        log::error("SIGHUP: configuration not applied, nothing changed: {}", status.error().message);
      }
    } else if (received == SIGUSR1) {
      if (options.stats_path.empty()) {
        log::warn("SIGUSR1: no --stats-file to write");
      } else if (auto status = write_file_atomically(options.stats_path,
                                                     stats_report(dataplane, (*datapath)->maps()).dump(2) + "\n");
                 !status) {
        log::error("SIGUSR1: {}", status.error().message);
      }
    } else {
      log::info("signal {}: stopping", received);
      return 0;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "tollgated: the tollgate agent. Loads the XDP load balancer and its TC reply program, attaches them and\n"
      "configures them from a file.\n"
      "Example: tollgated --interface eth0 --backend-interface eth1 --config /etc/tollgate/tollgate.json"};
  Options options;
  std::string log_level = "info";
  app.add_option("-i,--interface", options.client_interfaces,
                 "client-facing interface: XDP balances what arrives there (repeatable)")
      ->required();
  app.add_option("-b,--backend-interface", options.backend_interfaces,
                 "backend-facing interface: TC translates the replies arriving there (repeatable)");
  app.add_option("-c,--config", options.config_path, "configuration file (JSON), applied at start and on SIGHUP");
  app.add_option("--stats-file", options.stats_path, "where SIGUSR1 writes a JSON stats snapshot");
  app.add_flag("--generic", options.generic, "attach XDP in generic (skb) mode instead of native");
  app.add_option("--flow-capacity", options.flow_capacity, "entries in the connection table")
      ->check(CLI::Range(1u, 1u << 26));
  app.add_option("--log-level", log_level, "debug, info, warn, error or off");
  CLI11_PARSE(app, argc, argv);

  log::Level level;
  if (!log::parse_level(log_level, level)) {
    std::fprintf(stderr, "--log-level: unknown level '%s' (expected debug, info, warn, error or off)\n",
                 log_level.c_str());
    return 2;
  }
  log::set_level(level);
  return run(options);
}
