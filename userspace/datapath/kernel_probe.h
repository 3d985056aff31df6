// What the data path needs of the kernel, probed before the programs are
// loaded: a kernel that lacks something is refused with the feature and
// the oldest Linux that has it named, not with a verifier log.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "result.h"

namespace tollgate {

// The oldest kernel of the test matrix (tools/vm): older ones that pass the
// probe may work but are not tested.
inline constexpr std::string_view kOldestTestedKernel = "6.1";

struct KernelFeature {
  std::string name;   // as an operator reads it: "the helper bpf_fib_lookup in XDP programs"
  std::string since;  // the oldest Linux release that has it, "5.11"
  bool present = false;
  std::string detail;  // why the probe could not tell, if it could not
};

// Every feature the data path uses, probed on the running kernel (needs
// CAP_BPF or root: the probes load tiny programs and create tiny maps).
std::vector<KernelFeature> probe_kernel_features();

// The helpers probed, per program type (bpf_prog_type, bpf_func_id).
struct ProbedHelper {
  int program_type;
  int helper;
};
std::vector<ProbedHelper> probed_helpers();

// The running kernel's release ("6.1.0-57-amd64").
std::string kernel_release();

// One error naming every missing feature, or ok. `features` as probed.
Status require_kernel_features(const std::vector<KernelFeature>& features, std::string_view release);

}  // namespace tollgate
