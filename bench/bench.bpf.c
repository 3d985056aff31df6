// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Reference programs for the benchmarks (bench/), never part of the data
 * path:
 *   floor_xdp, floor_tc  return at once, touching nothing: the floor that
 *                        BPF_PROG_TEST_RUN figures are measured against;
 *   count_drop           counts every frame and drops it: attached to the
 *                        gateway's egress peer, it measures how many
 *                        packets per second the gateway forwards;
 *   redirect             bpf_redirect() to one interface, nothing else: the
 *                        ceiling for any XDP balancer between two veths.
 */
/* The kernel's headers first, whatever the order of their names. */
// clang-format off
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
// clang-format on

/* Set before load: where `redirect` sends every frame. */
const volatile __u32 redirect_ifindex = 0;

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32);
  __type(value, __u64);
  __uint(max_entries, 1);
} bench_frames SEC(".maps");

SEC("xdp")
int floor_xdp(struct xdp_md *ctx) { return XDP_PASS; }

SEC("tc")
int floor_tc(struct __sk_buff *skb) { return TC_ACT_OK; }

SEC("xdp")
int count_drop(struct xdp_md *ctx) {
  __u32 zero = 0;
  __u64 *frames = bpf_map_lookup_elem(&bench_frames, &zero);

  if (frames) *frames += 1;
  return XDP_DROP;
}

SEC("xdp")
int redirect(struct xdp_md *ctx) { return bpf_redirect(redirect_ifindex, 0); }

char LICENSE[] SEC("license") = "Dual BSD/GPL";
