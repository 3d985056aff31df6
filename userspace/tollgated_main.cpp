// tollgated: loads the data path, pins its maps, attaches it, and keeps it
// in step with the desired state, which the control API and the
// configuration file change.
//
// A restart, even after kill -9, adopts the pinned maps: established flows
// keep their backends, and the data path forwards all the while.
//
// Signals: SIGHUP re-reads the configuration file (validated whole; a bad
// file changes nothing, nor does one without services while some exist). SIGINT/SIGTERM stop the agent and leave the
// data path forwarding; `tollgated --detach` removes programs and pins.
#include <fcntl.h>
#include <malloc.h>
#include <net/if.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api.h"
#include "audit.h"
#include "config.h"
#include "controller.h"
#include "dataplane.h"
#include "events.h"
#include "flows.h"
#include "health.h"
#include "http_server.h"
#include "kernel_probe.h"
#include "loader.h"
#include "log.h"
#include "scrape_server.h"
#include "state.h"
#include "systemd_notify.h"

using namespace tollgate;

namespace {

// How often idle flows are deleted from the connection table: a small
// share of the shortest timeout (30 s), a walk of the table each time.
constexpr std::chrono::seconds kFlowSweepInterval{5};

struct Options {
  std::vector<std::string> client_interfaces;
  std::vector<std::string> backend_interfaces;
  std::string config_path;
  bool generic = false;
  uint32_t flow_capacity = TG_FLOWS_DEFAULT;
  uint32_t overflow_capacity = TG_OVERFLOW_FLOWS_DEFAULT;
  uint32_t source_buckets = TG_SOURCE_BUCKETS_DEFAULT;
  std::string pin_dir = kDefaultPinDir;
  std::string state_dir = kDefaultStateDir;
  std::string socket_path = kDefaultSocketPath;
  std::string audit_path = kDefaultAuditLog;
  std::optional<Endpoint> metrics_address;  // none: no scrape listener
  std::vector<uid_t> allow_uids;
  std::vector<gid_t> allow_gids;
  std::string api_group;  // the socket's group as given; empty: the agent's own
  std::optional<gid_t> api_gid;
  HttpLimits api_limits;
  bool recreate = false;
  bool detach = false;
  bool check_kernel = false;
};

// --check-kernel: every feature the data path needs, present or not.
int check_kernel() {
  auto features = probe_kernel_features();
  const std::string release = kernel_release();
  std::printf("kernel: Linux %s\n", release.c_str());
  for (const auto& feature : features) {
    std::printf("  %-8s %s (Linux %s)%s%s\n", feature.present ? "ok" : (feature.detail.empty() ? "MISSING" : "UNKNOWN"),
                feature.name.c_str(), feature.since.c_str(), feature.detail.empty() ? "" : ": ",
                feature.detail.c_str());
  }
  auto status = require_kernel_features(features, release);
  std::fflush(stdout);  // the list before the verdict
  if (!status) {
    log::error("{}", status.error().message);
    return 1;
  }
  std::printf("every feature tollgate needs is there (tested on Linux %.*s and later)\n",
              static_cast<int>(kOldestTestedKernel.size()), kOldestTestedKernel.data());
  return 0;
}

// Memory a burst of large API requests used goes back to the system once
// freed. Left to itself glibc keeps it: it raises its mmap and trim
// thresholds to the largest block freed so far (up to 32 and 64 MiB), and
// each connection's thread frees into an arena of its own, whose free top
// malloc_trim does not give back. Measured in the lab, 36 bodies of 880
// KiB took the agent's RSS from 8 to 32 MiB (numbers) or 227 MiB (small
// objects), for good. So: blocks of 128 KiB and more are mapped apart
// (unmapped when freed), a heap's free top is trimmed past 256 KiB, and
// one arena serves every thread (the agent's threads allocate little and
// seldom; the data path allocates nothing here). Before any thread starts.
void give_memory_back_when_freed() {
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024);
}

// Tells systemd (Type=notify) where the agent is; a failure is only logged.
void notify_manager(std::string_view state) {
  if (auto sent = systemd_notify(state); !sent) log::warn("{}", sent.error().message);
}

nlohmann::json self_actor(std::string_view source) {
  return {{"source", source}, {"caller", Caller::of_self().to_json()}};
}

// One agent per state directory at a time.
Result<int> lock_state_dir(const std::string& state_dir) {
  std::error_code error;
  std::filesystem::create_directories(state_dir, error);
  if (error) return make_error("cannot create state directory {}: {}", state_dir, error.message());
  const std::string path = state_dir + "/tollgated.lock";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return make_error("cannot open {}: {}", path, std::strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return make_error("another tollgated uses the state directory {} (lock {})", state_dir, path);
  }
  return fd;
}

int detach(const Options& options, AuditLog& audit) {
  auto state = load_state(options.state_dir);
  std::set<std::string> xdp(options.client_interfaces.begin(), options.client_interfaces.end());
  std::set<std::string> tc(options.backend_interfaces.begin(), options.backend_interfaces.end());
  if (!state) {
    log::warn("{}; detaching only from the interfaces given", state.error().message);
  } else if (*state) {
    xdp.insert((*state)->xdp_interfaces.begin(), (*state)->xdp_interfaces.end());
    tc.insert((*state)->tc_interfaces.begin(), (*state)->tc_interfaces.end());
  }
  int failures = 0;
  std::vector<std::string> xdp_left, tc_left;  // still to detach: kept in the state
  auto report = [&](const Result<bool>& detached, std::string_view kind, const std::string& interface) {
    if (!detached) {
      log::error("{}", detached.error().message);
      ++failures;
      (kind == "XDP" ? xdp_left : tc_left).push_back(interface);
    } else if (*detached) {
      log::info("{} program removed from {}", kind, interface);
    } else {
      log::info("no {} program of ours on {}", kind, interface);
    }
  };
  for (const auto& interface : xdp) report(DataPath::detach_xdp_by_name(interface), "XDP", interface);
  for (const auto& interface : tc) report(DataPath::detach_tc_by_name(interface), "TC", interface);
  if (auto status = DataPath::remove_pins(options.pin_dir); !status) {
    log::error("{}", status.error().message);
    ++failures;
  } else {
    log::info("pins under {} removed", options.pin_dir);
  }
  if (state && *state) {
    AgentState kept = **state;
    kept.xdp_interfaces = xdp_left;
    kept.tc_interfaces = tc_left;
    if (auto status = save_state(options.state_dir, kept); !status) log::error("{}", status.error().message);
  }
  audit.record(
      {{"action", "detach"},
       {"actor", self_actor("command_line")},
       {"object", fmt::format("xdp [{}], tc [{}], pins {}", fmt::join(xdp, ","), fmt::join(tc, ","), options.pin_dir)},
       {"result", failures ? "failed" : "ok"}});
  log::info("the desired state stays in {} for a later start", options.state_dir);
  return failures ? 1 : 0;
}

int run(const Options& options) {
  sigset_t signals;
  sigemptyset(&signals);
  for (int signal_number : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&signals, signal_number);
  sigprocmask(SIG_BLOCK, &signals, nullptr);  // threads started later inherit it

  auto lock = lock_state_dir(options.state_dir);
  if (!lock) {
    log::error("{}", lock.error().message);
    return 1;
  }
  auto audit = AuditLog::open(options.audit_path);
  if (!audit) {
    log::error("{}", audit.error().message);
    return 1;
  }
  if (options.detach) return detach(options, **audit);

  auto stored = load_state(options.state_dir);
  if (!stored) {
    log::error("{}", stored.error().message);
    return 1;
  }
  std::optional<ConfigFile> config_file;
  if (!options.config_path.empty()) {
    auto file = load_config_file(options.config_path);
    if (!file) {
      log::error("{}", file.error().message);
      return 1;
    }
    config_file = std::move(*file);
  }

  LoadOptions load_options;
  load_options.flow_capacity = options.flow_capacity;
  load_options.overflow_capacity = options.overflow_capacity;
  load_options.source_buckets = options.source_buckets;
  load_options.pin_dir = options.pin_dir;
  load_options.recreate = options.recreate;
  auto datapath = DataPath::load(load_options);
  if (!datapath) {
    log::error("{}", datapath.error().message);
    return 1;
  }
  Dataplane dataplane((*datapath)->maps());
  AgentState initial;  // what the kernel holds now
  if ((*datapath)->adopted()) {
    if (auto status = dataplane.adopt(); !status) {
      log::error("adopting the maps pinned in {}: {}", options.pin_dir, status.error().message);
      return 1;
    }
    initial.desired.services = dataplane.service_specs();
    log::info("adopted the maps pinned in {}: {} services", options.pin_dir, initial.desired.services.size());
  }
  if (*stored) {
    initial.config_digest = (*stored)->config_digest;
    initial.xdp_interfaces = (*stored)->xdp_interfaces;
    initial.tc_interfaces = (*stored)->tc_interfaces;
  }

  // The desired state: the state file (what the API and the config file
  // made it), unless the config file changed since it was applied last.
  Config desired = *stored ? (*stored)->desired : initial.desired;
  if (!*stored && (*datapath)->adopted())
    log::warn("no state file in {}: keeping what the kernel holds", options.state_dir);
  std::optional<std::string> digest;
  if (config_file && (!*stored || config_file->digest != (*stored)->config_digest)) {
    desired = config_file->config;
    digest = config_file->digest;
    log::info("configuration {} applied at start: {} services", options.config_path, desired.services.size());
  }

  Controller controller(dataplane, (*datapath)->maps(), **audit, options.state_dir, initial);
  if (auto status = controller.apply(desired, self_actor("start"), digest); !status) {
    log::error("{}", status.error().message);
    return 1;
  }
  log::info("data path ready: XDP program {}, TC program {}, flow table {} entries", (*datapath)->xdp_program_id(),
            (*datapath)->tc_program_id(), options.flow_capacity);

  // Attach (atomically replacing a running predecessor's programs), and
  // detach from interfaces a predecessor used that this start does not.
  const XdpMode mode = options.generic ? XdpMode::generic : XdpMode::native;
  if (options.generic) log::warn("generic XDP asked for: it runs after the kernel allocates an skb, far slower");
  for (const auto& interface : options.client_interfaces) {
    auto attachment = (*datapath)->attach_xdp(interface, mode);
    if (!attachment) {
      log::error("{}", attachment.error().message);
      return 1;
    }
    log::info("attached XDP program {} to {} (ifindex {}, {} mode): client side", attachment->program_id, interface,
              attachment->ifindex, xdp_mode_name(mode));
  }
  for (const auto& interface : options.backend_interfaces) {
    auto attachment = (*datapath)->attach_tc(interface);
    if (!attachment) {
      log::error("{}", attachment.error().message);
      return 1;
    }
    log::info("attached TC program {} to {} (ifindex {}, ingress): backend side", attachment->program_id, interface,
              attachment->ifindex);
  }
  auto listed = [](const std::vector<std::string>& list, const std::string& name) {
    return std::find(list.begin(), list.end(), name) != list.end();
  };
  const auto before = controller.snapshot();
  for (const auto& interface : before->settings.xdp_interfaces)
    if (!listed(options.client_interfaces, interface))
      if (auto detached = DataPath::detach_xdp_by_name(interface); detached && *detached)
        log::info("detached XDP from {}, which this start does not name", interface);
  for (const auto& interface : before->settings.tc_interfaces)
    if (!listed(options.backend_interfaces, interface))
      if (auto detached = DataPath::detach_tc_by_name(interface); detached && *detached)
        log::info("detached TC from {}, which this start does not name", interface);
  if (auto status = controller.set_interfaces(options.client_interfaces, options.backend_interfaces); !status)
    log::error("{}", status.error().message);

  AccessPolicy access;
  access.uids.insert(options.allow_uids.begin(), options.allow_uids.end());
  access.gids.insert(options.allow_gids.begin(), options.allow_gids.end());
  AgentInfo info{TOLLGATE_VERSION,  // from project() in CMakeLists.txt
                 options.pin_dir,
                 options.state_dir,
                 (*datapath)->adopted(),
                 (*datapath)->xdp_program_id(),
                 (*datapath)->tc_program_id(),
                 std::string(xdp_mode_name(mode)),
                 options.flow_capacity};
  HealthMonitor health(controller, **audit);
  health.start();
  // The connection table evicts nothing: idle flows are deleted here.
  FlowSweeper sweeper((*datapath)->maps(), kFlowSweepInterval);
  sweeper.start();
  EventMonitor events(controller, **audit);
  if (auto status = events.start(); !status) {
    log::error("{}", status.error().message);
    return 1;
  }
  // Root and the socket's group may connect (0660): a local user outside
  // it cannot even take a connection. Every request is then authorized by
  // its peer credentials (and refused ones are audited).
  const SocketAccess socket_access{0660, options.api_gid};
  std::unique_ptr<Api> api;  // made after the server, whose counters its metrics show; serves once serve() runs
  auto server = HttpServer::listen(
      options.socket_path, socket_access, [&api](const HttpRequest& request) { return api->handle(request); },
      [&api](const Caller& caller, const HttpResponse& response) { api->audit_rejected(caller, response); },
      options.api_limits);
  if (!server) {
    log::error("{}", server.error().message);
    return 1;
  }
  api = std::make_unique<Api>(controller, **audit, access, info, &health, &events, &(*server)->counters(), &sweeper);
  std::unique_ptr<ScrapeServer> scrape;
  if (options.metrics_address) {
    auto listening = ScrapeServer::listen(*options.metrics_address, [&api] { return api->metrics(); });
    if (!listening) {
      log::error("{}", listening.error().message);
      return 1;
    }
    scrape = std::move(*listening);
    log::info("metrics on http://{}/metrics (read-only, no credentials)", scrape->address().to_string());
  }
  std::thread api_thread([&server] { (*server)->serve(); });
  log::info("control API on {} (mode 0660, group {}): at most {} connections, {} per uid, {} kept for root",
            options.socket_path, options.api_group.empty() ? fmt::format("{}", getegid()) : options.api_group,
            options.api_limits.connections.total, options.api_limits.connections.per_uid,
            options.api_limits.connections.reserved_for_root);
  log::info("ready");
  notify_manager("READY=1");  // attached, reconciled, serving

  for (;;) {
    int received = 0;
    sigwait(&signals, &received);
    if (received != SIGHUP) {
      log::info("signal {}: stopping; the data path keeps forwarding (tollgated --detach removes it)", received);
      notify_manager("STOPPING=1");
      break;
    }
    if (options.config_path.empty()) {
      log::warn("SIGHUP: no --config file to re-read");
      continue;
    }
    notify_manager("RELOADING=1");
    auto actor = self_actor("config_file");
    actor["path"] = options.config_path;
    auto file = load_config_file(options.config_path);
    Status status = file ? Status{} : Status{file.error()};
    // A file without services does not remove every service on SIGHUP: an
    // emptied or half-written file is the likelier cause than an operator
    // who means it (who has `service rm` and PUT /v1/config?allow_empty).
    // At start an empty file is applied: the operator (re)started with it.
    if (file)
      status = check_not_emptying(file->config, controller.snapshot()->services.size(),
                                  "not applied on SIGHUP; remove them with `tollgate service rm` or "
                                  "PUT /v1/config?allow_empty=true");
    if (status) status = controller.apply(file->config, actor, file->digest);
    (*audit)->record({{"action", "config.reload"},
                      {"actor", actor},
                      {"object", options.config_path},
                      {"result", status ? "ok" : "invalid"},
                      {"error", status ? "" : status.error().message}});
    if (status)
      log::info("configuration {} applied: {} services", options.config_path, file->config.services.size());
    else
      log::error("SIGHUP: configuration not applied, nothing changed: {}", status.error().message);
    notify_manager("READY=1");
  }
  scrape.reset();
  (*server)->stop();
  api_thread.join();
  health.stop();
  events.stop();
  sweeper.stop();
  close(*lock);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "tollgated: the tollgate agent. Loads the XDP load balancer and its TC reply program, pins their maps,\n"
      "attaches them, and serves the control API that the tollgate command uses.\n"
      "Example: tollgated --interface eth0 --backend-interface eth1 --config /etc/tollgate/tollgate.json"};
  Options options;
  std::string log_level = "info";
  auto* interface = app.add_option("-i,--interface", options.client_interfaces,
                                   "client-facing interface: XDP balances what arrives there (repeatable)");
  app.add_option("-b,--backend-interface", options.backend_interfaces,
                 "backend-facing interface: TC translates the replies arriving there (repeatable)");
  app.add_option("-c,--config", options.config_path,
                 "configuration file (JSON), applied at start when it changed since last applied, and on SIGHUP");
  app.add_flag("--generic", options.generic, "attach XDP in generic (skb) mode instead of native");
  app.add_option("--flow-capacity", options.flow_capacity,
                 "entries in the connection table (it evicts nothing; idle flows are swept)")
      ->check(CLI::Range(1u, 1u << 26));
  app.add_option("--overflow-capacity", options.overflow_capacity,
                 "entries for new flows that find the connection table full (least recently used go first)")
      ->check(CLI::Range(1u, 1u << 24))
      ->capture_default_str();
  app.add_option("--source-buckets", options.source_buckets,
                 "per-source rate-limit buckets held at once (least recently used go first)")
      ->check(CLI::Range(1u, 1u << 24))
      ->capture_default_str();
  app.add_option("--pin-dir", options.pin_dir, "where the maps are pinned, on a BPF filesystem")->capture_default_str();
  app.add_option("--state-dir", options.state_dir, "where the desired state is kept")->capture_default_str();
  app.add_option("--socket", options.socket_path, "the control API's Unix socket")->capture_default_str();
  app.add_option("--audit-log", options.audit_path, "the audit log (JSON lines)")->capture_default_str();
  app.add_option("--allow-uid", options.allow_uids, "a uid allowed to use the API besides root (repeatable)");
  app.add_option("--allow-gid", options.allow_gids, "a gid allowed to use the API (repeatable)");
  app.add_option("--api-group", options.api_group,
                 "the API socket's group (a name or gid): the socket is 0660, so only root and this group may "
                 "connect (default: the agent's own group); who may use the API is still --allow-uid/--allow-gid");
  app.add_option("--api-connections", options.api_limits.connections.total,
                 "API connections served at once, root's included")
      ->check(CLI::Range(size_t{1}, size_t{4096}))
      ->capture_default_str();
  app.add_option("--api-connections-per-uid", options.api_limits.connections.per_uid,
                 "API connections one uid other than root may hold at once")
      ->check(CLI::Range(size_t{1}, size_t{4096}))
      ->capture_default_str();
  app.add_option("--api-connections-for-root", options.api_limits.connections.reserved_for_root,
                 "of --api-connections, how many no uid but root may take")
      ->check(CLI::Range(size_t{0}, size_t{4096}))
      ->capture_default_str();
  auto milliseconds_option = [&app](const std::string& name, std::chrono::milliseconds& value,
                                    const std::string& help) {
    app.add_option_function<unsigned>(
           name, [&value](unsigned milliseconds) { value = std::chrono::milliseconds(milliseconds); }, help)
        ->check(CLI::Range(1u, 3'600'000u))
        ->default_str(std::to_string(value.count()));
  };
  milliseconds_option("--api-read-timeout-ms", options.api_limits.read_deadline,
                      "an API request (headers and body) must arrive whole within this, or is answered 408");
  milliseconds_option("--api-write-timeout-ms", options.api_limits.write_deadline,
                      "an API answer must be taken within this, or its connection is closed");
  app.add_flag("--recreate", options.recreate,
               "drop pinned maps instead of adopting them, e.g. after an ABI change (established flows are lost)");
  app.add_flag("--detach", options.detach,
               "uninstall: remove our programs from the interfaces recorded in the state (and any given) and the "
               "pins, then exit");
  app.add_flag("--check-kernel", options.check_kernel,
               "probe what the data path needs of the running kernel, print it, and exit (1 when something is "
               "missing)");
  std::string metrics_address = "127.0.0.1:9464";
  app.add_option("--metrics-address", metrics_address,
                 "where Prometheus scrapes GET /metrics (ADDRESS:PORT, [IPv6]:PORT), read-only and without "
                 "credentials; off: no listener")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "debug, info, warn, error or off");
  std::string log_format = "text";
  app.add_option("--log-format", log_format,
                 "text (a timestamp first; under systemd, the journal's priority instead) or json (an object a "
                 "line)")
      ->capture_default_str();
  app.set_version_flag("--version", std::string("tollgated ") + TOLLGATE_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help and --version exit 0; every usage error exits 2 (not CLI11's own codes).
    return app.exit(error) == 0 ? 0 : 2;
  }

  if (options.check_kernel) return check_kernel();
  // A mistyped interface stops the start before anything is loaded, pinned
  // or attached (--detach takes interfaces that may be gone).
  if (!options.detach) {
    for (const auto* list : {&options.client_interfaces, &options.backend_interfaces})
      for (const auto& name : *list)
        if (if_nametoindex(name.c_str()) == 0) {
          std::fprintf(stderr, "no interface '%s' in this network namespace: nothing loaded\n", name.c_str());
          return 2;
        }
  }
  if (!options.detach && options.client_interfaces.empty()) {
    std::fprintf(stderr, "%s: required unless --detach\n", interface->get_name().c_str());
    return 2;
  }
  log::Level level;
  if (!log::parse_level(log_level, level)) {
    std::fprintf(stderr, "--log-level: unknown level '%s' (expected debug, info, warn, error or off)\n",
                 log_level.c_str());
    return 2;
  }
  log::set_level(level);
  log::Format format;
  if (!log::parse_format(log_format, format)) {
    std::fprintf(stderr, "--log-format: unknown format '%s' (expected text or json)\n", log_format.c_str());
    return 2;
  }
  log::set_format(format == log::Format::text && log::stderr_is_journal() ? log::Format::journal : format);
  if (auto address = parse_scrape_address(metrics_address); !address) {
    std::fprintf(stderr, "%s\n", address.error().message.c_str());
    return 2;
  } else {
    options.metrics_address = *address;
  }
  give_memory_back_when_freed();
  if (auto wrong = check_quota_limits(options.api_limits.connections)) {
    std::fprintf(stderr, "--api-connections-for-root: %s\n", wrong->c_str());
    return 2;
  }
  if (!options.api_group.empty()) {
    auto group = group_by_name(options.api_group);
    if (!group) {
      std::fprintf(stderr, "--api-group: %s\n", group.error().message.c_str());
      return 2;
    }
    options.api_gid = *group;
  }
  // Errors travel as values; an exception here is a bug, said so, not an abort.
  try {
    return run(options);
  } catch (const std::exception& error) {
    log::error("fatal: {}", error.what());
  } catch (...) {
    log::error("fatal: an exception that is not a std::exception");
  }
  return 1;
}
