// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A program every verifier refuses (it reads a byte past the bounds it
 * checked): the test that a refusal is logged whole at debug level and in
 * one line at error level (tests/bpf/kernel_test.cpp).
 */
// clang-format off
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
// clang-format on

SEC("xdp")
int tg_refused(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  __u8 *first = data;

  if ((void *)(first + 1) > data_end) return XDP_PASS;
  return first[1] ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
