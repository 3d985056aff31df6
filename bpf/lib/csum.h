/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Incremental Internet checksum update (RFC 1624: HC' = ~(~HC + ~m + m')).
 * One's complement sums do not depend on byte order, so every operand stays
 * in network order.
 */
#ifndef TG_LIB_CSUM_H
#define TG_LIB_CSUM_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

static __always_inline __u16 tg_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* Start an update of checksum `check`. */
static __always_inline __u32 tg_csum_begin(__u16 check)
{
	return (__u16)~check;
}

/* Account for one 16-bit word changing from `from` to `to`. */
static __always_inline __u32 tg_csum_word(__u32 sum, __u16 from, __u16 to)
{
	return sum + (__u16)~from + to;
}

static __always_inline __u32 tg_csum_u32(__u32 sum, __u32 from, __u32 to)
{
	sum = tg_csum_word(sum, (__u16)from, (__u16)to);
	return tg_csum_word(sum, (__u16)(from >> 16), (__u16)(to >> 16));
}

/* Account for a 4-word (IPv6) address change. */
static __always_inline __u32 tg_csum_addr6(__u32 sum, const __u32 *from,
					   const __u32 *to)
{
#pragma unroll
	for (int i = 0; i < 4; i++)
		sum = tg_csum_u32(sum, from[i], to[i]);
	return sum;
}

static __always_inline __u16 tg_csum_end(__u32 sum)
{
	return (__u16)~tg_csum_fold(sum);
}

#endif /* TG_LIB_CSUM_H */
