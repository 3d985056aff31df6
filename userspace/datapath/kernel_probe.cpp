#include "kernel_probe.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>

namespace tollgate {
namespace {

// The release that first has each feature for that program type (from the
// kernel's net/core/filter.c history; where a helper reached XDP later than
// TC, XDP's release). The helpers are exactly those the programs call (a
// unit test reads the calls out of the objects).
// A program or map type the data path needs.
template <typename Type>
struct TypeNeed {
  Type type;
  const char* name;
  const char* since;
};
constexpr TypeNeed<bpf_prog_type> kProgramTypes[] = {
    {BPF_PROG_TYPE_XDP, "XDP programs", "4.8"},
    {BPF_PROG_TYPE_SCHED_CLS, "TC (sched_cls) programs", "4.1"},
};

constexpr TypeNeed<bpf_map_type> kMapTypes[] = {
    {BPF_MAP_TYPE_ARRAY, "array maps", "3.19"},
    {BPF_MAP_TYPE_HASH, "hash maps", "3.19"},
    {BPF_MAP_TYPE_PERCPU_ARRAY, "per-CPU array maps", "4.6"},
    {BPF_MAP_TYPE_LRU_HASH, "LRU hash maps", "4.10"},
    {BPF_MAP_TYPE_LPM_TRIE, "LPM trie maps", "4.11"},
    {BPF_MAP_TYPE_ARRAY_OF_MAPS, "array-of-maps maps", "4.12"},
    {BPF_MAP_TYPE_RINGBUF, "ring buffer maps", "5.8"},
};

struct HelperNeed {
  bpf_prog_type program;
  bpf_func_id helper;
  const char* name;
  const char* since;
};
constexpr HelperNeed kHelpers[] = {
    {BPF_PROG_TYPE_XDP, BPF_FUNC_map_lookup_elem, "bpf_map_lookup_elem", "4.8"},
    {BPF_PROG_TYPE_XDP, BPF_FUNC_map_update_elem, "bpf_map_update_elem", "4.8"},
    {BPF_PROG_TYPE_XDP, BPF_FUNC_map_delete_elem, "bpf_map_delete_elem", "4.8"},
    {BPF_PROG_TYPE_XDP, BPF_FUNC_ktime_get_ns, "bpf_ktime_get_ns", "4.8"},
    {BPF_PROG_TYPE_XDP, BPF_FUNC_ktime_get_coarse_ns, "bpf_ktime_get_coarse_ns", "5.11"},
    {BPF_PROG_TYPE_XDP, BPF_FUNC_get_prandom_u32, "bpf_get_prandom_u32", "4.8"},
    {BPF_PROG_TYPE_XDP, BPF_FUNC_csum_diff, "bpf_csum_diff", "4.16"},
    {BPF_PROG_TYPE_XDP, BPF_FUNC_redirect, "bpf_redirect", "4.14"},
    {BPF_PROG_TYPE_XDP, BPF_FUNC_xdp_adjust_head, "bpf_xdp_adjust_head", "4.10"},
    {BPF_PROG_TYPE_XDP, BPF_FUNC_xdp_adjust_tail, "bpf_xdp_adjust_tail", "4.18"},
    {BPF_PROG_TYPE_XDP, BPF_FUNC_xdp_get_buff_len, "bpf_xdp_get_buff_len", "5.18"},
    {BPF_PROG_TYPE_XDP, BPF_FUNC_fib_lookup, "bpf_fib_lookup", "4.18"},
    {BPF_PROG_TYPE_XDP, BPF_FUNC_ringbuf_reserve, "bpf_ringbuf_reserve", "5.8"},
    {BPF_PROG_TYPE_XDP, BPF_FUNC_ringbuf_submit, "bpf_ringbuf_submit", "5.8"},
    {BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_map_lookup_elem, "bpf_map_lookup_elem", "4.1"},
    {BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_map_update_elem, "bpf_map_update_elem", "4.1"},
    {BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_ktime_get_coarse_ns, "bpf_ktime_get_coarse_ns", "5.11"},
    {BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_skb_store_bytes, "bpf_skb_store_bytes", "4.1"},
    {BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_skb_pull_data, "bpf_skb_pull_data", "4.9"},
    {BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_l3_csum_replace, "bpf_l3_csum_replace", "4.1"},
    {BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_l4_csum_replace, "bpf_l4_csum_replace", "4.1"},
    {BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_fib_lookup, "bpf_fib_lookup", "4.18"},
    {BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_redirect, "bpf_redirect", "4.4"},
    {BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_redirect_neigh, "bpf_redirect_neigh", "5.10"},
};

std::string program_name(bpf_prog_type type) {
  for (const auto& need : kProgramTypes)
    if (need.type == type) return need.name;
  return "programs";
}

// libbpf's probes answer 1 (present), 0 (absent) or a negative errno.
KernelFeature from_probe(std::string name, std::string since, int answer) {
  KernelFeature feature{std::move(name), std::move(since), answer == 1, {}};
  if (answer < 0) feature.detail = fmt::format("the probe failed: {}", std::strerror(-answer));
  return feature;
}

// BPF_F_INNER_MAP (an inner map whose size may differ from its template's:
// the Maglev tables) has no libbpf probe: create one.
KernelFeature probe_inner_map_flag() {
  LIBBPF_OPTS(bpf_map_create_opts, options, .map_flags = BPF_F_INNER_MAP);
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "tg_probe", sizeof(uint32_t), sizeof(uint32_t), 1, &options);
  int answer = fd >= 0 ? 1 : (errno == EINVAL ? 0 : -errno);
  if (fd >= 0) close(fd);
  return from_probe("inner maps of any size (BPF_F_INNER_MAP)", "5.10", answer);
}

// The programs' exact buckets and event aggregation use BPF's atomic
// exchange and compare-and-exchange (clang emits them for __sync_* at
// -mcpu=v3); 5.10 knows only atomic add. No libbpf probe: load one.
KernelFeature probe_atomic_exchange() {
  // *(u64 *)(r10 - 8) = 0; r0 = 0; r1 = 1;
  // r0 = cmpxchg_64(r10 - 8, r0, r1); r1 = xchg_64(r10 - 8, r1); r0 = 2 (XDP_PASS); exit
  const bpf_insn program[] = {
      {BPF_ST | BPF_MEM | BPF_DW, BPF_REG_10, 0, -8, 0},
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_1, 0, 0, 1},
      {BPF_STX | BPF_ATOMIC | BPF_DW, BPF_REG_10, BPF_REG_1, -8, BPF_CMPXCHG},
      {BPF_STX | BPF_ATOMIC | BPF_DW, BPF_REG_10, BPF_REG_1, -8, BPF_XCHG},
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 2},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "tg_probe", "GPL", program, std::size(program), nullptr);
  int answer = fd >= 0 ? 1 : (errno == EINVAL ? 0 : -errno);
  if (fd >= 0) close(fd);
  return from_probe("atomic exchange and compare-and-exchange instructions", "5.12", answer);
}

// libbpf's type probes answer "absent" to a caller who may not load BPF at
// all: find that out first.
std::string permission_problem() {
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "tg_probe", sizeof(uint32_t), sizeof(uint32_t), 1, nullptr);
  if (fd >= 0) {
    close(fd);
    return {};
  }
  if (errno == EPERM || errno == EACCES)
    return fmt::format("may not use BPF here ({}): needs root, or CAP_BPF with CAP_NET_ADMIN", std::strerror(errno));
  return fmt::format("cannot create a BPF map: {}", std::strerror(errno));
}

}  // namespace

std::vector<ProbedHelper> probed_helpers() {
  std::vector<ProbedHelper> helpers;
  for (const auto& need : kHelpers) helpers.push_back({need.program, need.helper});
  return helpers;
}

std::vector<KernelFeature> probe_kernel_features() {
  std::vector<KernelFeature> features;
  if (std::string problem = permission_problem(); !problem.empty()) {
    features.push_back({"BPF", "3.18", false, problem});
    return features;
  }
  for (const auto& need : kProgramTypes)
    features.push_back(from_probe(need.name, need.since, libbpf_probe_bpf_prog_type(need.type, nullptr)));
  for (const auto& need : kMapTypes)
    features.push_back(from_probe(need.name, need.since, libbpf_probe_bpf_map_type(need.type, nullptr)));
  features.push_back(probe_inner_map_flag());
  features.push_back(probe_atomic_exchange());
  for (const auto& need : kHelpers)
    features.push_back(from_probe(fmt::format("the helper {} in {}", need.name, program_name(need.program)), need.since,
                                  libbpf_probe_bpf_helper(need.program, need.helper, nullptr)));
  return features;
}

std::string kernel_release() {
  utsname name{};
  if (uname(&name) != 0) return "unknown";
  return name.release;
}

Status require_kernel_features(const std::vector<KernelFeature>& features, std::string_view release) {
  std::vector<std::string> missing, unknown;
  for (const auto& feature : features) {
    if (feature.present) continue;
    if (feature.detail.empty())
      missing.push_back(fmt::format("{} (Linux {})", feature.name, feature.since));
    else
      unknown.push_back(fmt::format("{}: {}", feature.name, feature.detail));
  }
  if (!missing.empty())
    return make_error(
        "this kernel (Linux {}) lacks what tollgate's data path needs: {}; tollgate is tested on Linux {} and later "
        "(tollgated --check-kernel lists every feature)",
        release, fmt::join(missing, "; "), kOldestTestedKernel);
  if (!unknown.empty())
    return make_error("cannot tell whether this kernel (Linux {}) has what tollgate needs: {}", release,
                      fmt::join(unknown, "; "));
  return {};
}

}  // namespace tollgate
