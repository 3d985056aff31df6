#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <utility>

#include "kernel_probe.h"
#include "libbpf_log.h"
#include "tollgate_tc.skel.h"
#include "tollgate_xdp.skel.h"

using namespace tollgate;

// The end of the log with which the 6.1 verifier refused tg_xdp_balancer
// before tg_ntohs_bounded (tools/vm run 6.1, --log-level debug).
constexpr const char* kRefusedOn61 =
    "; payload_length = bpf_ntohs(ip6h->payload_len);\n"
    "118: (69) r1 = *(u16 *)(r9 +4)        ; R1_w=scalar(umax=65535,var_off=(0x0; 0xffff)) R9=pkt(off=14,r=54,imm=0)\n"
    "119: (dc) r1 = be16 r1                ; R1_w=scalar()\n"
    "; if ((void *)(ip6h + 1) + payload_length > data_end)\n"
    "120: (bf) r2 = r9                     ; R2_w=pkt(off=14,r=54,imm=0) R9=pkt(off=14,r=54,imm=0)\n"
    "121: (0f) r2 += r1\n"
    "math between pkt pointer and register with unbounded min value is not allowed\n"
    "processed 84 insns (limit 1000000) max_states_per_insn 0 total_states 6 peak_states 6 mark_read 3\n";

TEST(VerifierLog, SummaryIsTheReasonAndTheInstruction) {
  std::string summary = log::summarize_verifier_log(kRefusedOn61);
  EXPECT_EQ(summary,
            "math between pkt pointer and register with unbounded min value is not allowed "
            "[at instruction 121: (0f) r2 += r1]");
}

TEST(VerifierLog, ReasonOfSeveralLinesIsKeptWhole) {
  EXPECT_EQ(log::summarize_verifier_log(
                "4: (2d) if r2 > r1 goto pc+4          ; R1_w=pkt_end(off=0,imm=0) R2_w=pkt(off=1,r=1,imm=0)\n"
                "; return first[1] ? XDP_PASS : XDP_DROP;\n"
                "5: (71) r1 = *(u8 *)(r2 +0)        ; R2_w=pkt(off=1,r=1,imm=0)\n"
                "invalid access to packet, off=1 size=1, R2(id=0,off=1,r=1)\n"
                "R2 offset is outside of the packet\n"
                "processed 6 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n"),
            "invalid access to packet, off=1 size=1, R2(id=0,off=1,r=1); R2 offset is outside of the packet "
            "[at instruction 5: (71) r1 = *(u8 *)(r2 +0)]");
}

TEST(VerifierLog, LogWithoutInstructionsGivesTheReasonAlone) {
  EXPECT_EQ(log::summarize_verifier_log("invalid func unknown#160\nprocessed 3 insns (limit 1000000)\n\n"),
            "invalid func unknown#160");
  EXPECT_EQ(log::summarize_verifier_log(""), "(no log)");
  EXPECT_EQ(log::summarize_verifier_log("processed 3 insns (limit 1000000)\n"), "(no log)");
}

std::vector<KernelFeature> all_present() {
  return {{"XDP programs", "4.8", true, {}}, {"the helper bpf_ktime_get_coarse_ns in XDP programs", "5.11", true, {}}};
}

TEST(KernelFeatures, AllPresentIsOk) { EXPECT_TRUE(require_kernel_features(all_present(), "6.1.0-57-amd64")); }

TEST(KernelFeatures, MissingFeatureIsNamedWithTheReleaseThatHasIt) {
  auto features = all_present();
  features[1].present = false;
  auto status = require_kernel_features(features, "5.10.0-46-amd64");
  ASSERT_FALSE(status);
  const std::string& message = status.error().message;
  EXPECT_NE(message.find("Linux 5.10.0-46-amd64"), std::string::npos) << message;
  EXPECT_NE(message.find("the helper bpf_ktime_get_coarse_ns in XDP programs (Linux 5.11)"), std::string::npos)
      << message;
  EXPECT_NE(message.find("tested on Linux 6.1 and later"), std::string::npos) << message;
  EXPECT_EQ(message.find("XDP programs (Linux 4.8)"), std::string::npos) << "a present feature is not listed";
}

TEST(KernelFeatures, FailedProbeIsNotTakenForAMissingFeature) {
  auto features = all_present();
  features[0].present = false;
  features[0].detail = "the probe failed: Operation not permitted";
  auto status = require_kernel_features(features, "6.1.0-57-amd64");
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("cannot tell"), std::string::npos) << status.error().message;
  EXPECT_NE(status.error().message.find("Operation not permitted"), std::string::npos);
}

// The helper calls in a BPF object's programs, as (program type, helper).
std::set<std::pair<int, int>> helper_calls(const void* elf, size_t size) {
  std::set<std::pair<int, int>> calls;
  bpf_object* object = bpf_object__open_mem(elf, size, nullptr);
  EXPECT_NE(object, nullptr);
  if (!object) return calls;
  bpf_program* program;
  bpf_object__for_each_program(program, object) {
    const bpf_insn* insns = bpf_program__insns(program);
    for (size_t i = 0; i < bpf_program__insn_cnt(program); ++i) {
      // A helper call: BPF_JMP | BPF_CALL with src_reg 0 (1 is a BPF-to-BPF call, 2 a kfunc).
      if (insns[i].code == (BPF_JMP | BPF_CALL) && insns[i].src_reg == 0)
        calls.insert({bpf_program__type(program), insns[i].imm});
    }
  }
  bpf_object__close(object);
  return calls;
}

TEST(KernelFeatures, EveryHelperTheProgramsCallIsProbedAndNoOther) {
  size_t xdp_size = 0, tc_size = 0;
  const void* xdp = tollgate_xdp__elf_bytes(&xdp_size);
  const void* tc = tollgate_tc__elf_bytes(&tc_size);
  auto called = helper_calls(xdp, xdp_size);
  called.merge(helper_calls(tc, tc_size));
  std::set<std::pair<int, int>> probed;
  for (const auto& helper : probed_helpers()) probed.insert({helper.program_type, helper.helper});
  for (const auto& [type, helper] : called)
    EXPECT_TRUE(probed.count({type, helper})) << "program type " << type << " calls helper " << helper << " unprobed";
  for (const auto& [type, helper] : probed)
    EXPECT_TRUE(called.count({type, helper})) << "program type " << type << " never calls probed helper " << helper;
}
