// tollgated: loads the data path, attaches it and keeps it configured.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "dataplane.h"
#include "loader.h"
#include "log.h"

using namespace tollgate;

namespace {

int wait_for_stop_signal() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  int received = 0;
  sigwait(&signals, &received);
  return received;
}

int run(const std::vector<std::string>& interfaces, bool generic, uint32_t flow_capacity) {
  auto datapath = DataPath::load(LoadOptions{flow_capacity});
  if (!datapath) {
    log::error("{}", datapath.error().message);
    return 1;
  }
  Dataplane dataplane((*datapath)->maps());
  if (auto status = dataplane.set_timeouts(FlowTimeouts{}); !status) {
    log::error("{}", status.error().message);
    return 1;
  }
  log::info("data path loaded: XDP program id {}, flow table {} entries", (*datapath)->xdp_program_id(), flow_capacity);

  const XdpMode mode = generic ? XdpMode::generic : XdpMode::native;
  if (generic) log::warn("generic XDP asked for: it runs after the kernel allocates an skb, far slower");
  std::vector<XdpAttachment> attached;
  for (const auto& interface : interfaces) {
    auto attachment = (*datapath)->attach_xdp(interface, mode);
    if (!attachment) {
      log::error("{}", attachment.error().message);
      for (const auto& done : attached) (void)(*datapath)->detach_xdp(done);
      return 1;
    }
    log::info("attached XDP program {} to {} (ifindex {}, {} mode)", attachment->program_id, interface,
              attachment->ifindex, xdp_mode_name(mode));
    attached.push_back(*attachment);
  }
  std::fflush(stderr);

  int signal_number = wait_for_stop_signal();
  log::info("signal {}: detaching and exiting", signal_number);
  int exit_code = 0;
  for (const auto& attachment : attached) {
    if (auto status = (*datapath)->detach_xdp(attachment); !status) {
      log::error("{}", status.error().message);
      exit_code = 1;
    }
  }
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "tollgated: the tollgate agent. Loads the XDP load balancer and attaches it to interfaces.\n"
      "Example: tollgated --interface eth1"};
  std::vector<std::string> interfaces;
  bool generic = false;
  uint32_t flow_capacity = TG_FLOWS_DEFAULT;
  std::string log_level = "info";
  app.add_option("-i,--interface", interfaces, "client-facing interface to attach XDP to (repeatable)")->required();
  app.add_flag("--generic", generic, "attach in generic (skb) mode instead of native");
  app.add_option("--flow-capacity", flow_capacity, "entries in the connection table")->check(CLI::Range(1u, 1u << 26));
  app.add_option("--log-level", log_level, "debug, info, warn, error or off");
  CLI11_PARSE(app, argc, argv);

  log::Level level;
  if (!log::parse_level(log_level, level)) {
    std::fprintf(stderr, "--log-level: unknown level '%s'\n", log_level.c_str());
    return 2;
  }
  log::set_level(level);
  return run(interfaces, generic, flow_capacity);
}
