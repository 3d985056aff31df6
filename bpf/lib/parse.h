/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Header parsing as a cursor: each helper bounds-checks its header against
 * data_end, advances the cursor and reports what comes next.
 */
#ifndef TG_LIB_PARSE_H
#define TG_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "tollgate_abi.h"

#define TG_VLAN_MAX_DEPTH 2
#define TG_PARSE_OK (-1)

/* AF_INET/AF_INET6 for bpf_fib_lookup (the socket headers are not UAPI). */
#define TG_AF_INET 2
#define TG_AF_INET6 10

/* Flags (don't fragment, more fragments) and offset of iphdr.frag_off. */
#define TG_IP_DF 0x4000
#define TG_IP_MF 0x2000
#define TG_IP_OFFSET 0x1fff

/*
 * A 16-bit length field in host order, with bounds the verifier keeps.
 * Verifier workaround: before Linux 7.0 (and its backport to 6.18.y) the
 * verifier forgets a register's bounds across a byte swap (BPF_END makes
 * it unknown), so `pkt + bpf_ntohs(len)` is refused on 6.1 and 6.12 ("math
 * between pkt pointer and register with unbounded min value"). A mask
 * restores [0, 0xffff]; the empty asm keeps clang from dropping the mask
 * as redundant.
 */
static __always_inline __u32 tg_ntohs_bounded(__be16 value)
{
	__u32 host = bpf_ntohs(value);

	asm volatile("" : "+r"(host));
	return host & 0xffff;
}

static __always_inline int tg_addr6_equal(const __u32 *a, const __u32 *b)
{
	return !((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]));
}

struct hdr_cursor {
	void *pos;
};

/* struct vlan_hdr is kernel-internal; this is its wire format. */
struct tg_vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

static __always_inline int tg_is_vlan(__be16 ether_type)
{
	return ether_type == bpf_htons(ETH_P_8021Q) ||
	       ether_type == bpf_htons(ETH_P_8021AD);
}

/*
 * Ethernet plus up to two VLAN tags. Returns TG_PARSE_OK with the inner
 * EtherType (network order), or the drop reason.
 */
static __always_inline int tg_parse_eth(struct hdr_cursor *cursor,
					void *data_end, __be16 *ether_type,
					__u8 *vlan_depth)
{
	struct ethhdr *eth = cursor->pos;
	__be16 type;

	if ((void *)(eth + 1) > data_end)
		return TG_DROP_ETH_TRUNCATED;
	cursor->pos = eth + 1;
	type = eth->h_proto;

#pragma unroll
	for (int i = 0; i < TG_VLAN_MAX_DEPTH; i++) {
		struct tg_vlan_hdr *vlan = cursor->pos;

		if (!tg_is_vlan(type))
			break;
		if ((void *)(vlan + 1) > data_end)
			return TG_DROP_ETH_TRUNCATED;
		type = vlan->encapsulated_proto;
		cursor->pos = vlan + 1;
		*vlan_depth += 1;
	}
	if (tg_is_vlan(type))
		return TG_DROP_VLAN_TOO_DEEP;
	*ether_type = type;
	return TG_PARSE_OK;
}

/* The L4 part of a parsed packet. */
struct tg_l4 {
	__be16 src_port;
	__be16 dst_port;
	__u8 tcp_flags; /* byte 13 of the TCP header; 0 for UDP */
};

/*
 * TCP or UDP header at `l4` of an IP payload of `l4_len` bytes (from the IP
 * header, not the frame: Ethernet may pad). `whole`: the payload is the
 * whole datagram, not its first fragment (whose UDP length covers all the
 * fragments). Returns TG_PARSE_OK or the drop reason.
 */
static __always_inline int tg_parse_l4(void *l4, void *data_end, __u8 protocol,
				       __u32 l4_len, int whole,
				       struct tg_l4 *out)
{
	if (protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end || l4_len < sizeof(*tcp))
			return TG_DROP_TCP_TRUNCATED;
		if (tcp->doff < 5 || tcp->doff * 4 > l4_len)
			return TG_DROP_TCP_TRUNCATED;
		out->src_port = tcp->source;
		out->dst_port = tcp->dest;
		out->tcp_flags = ((__u8 *)tcp)[13];
		return TG_PARSE_OK;
	}

	struct udphdr *udp = l4;

	if ((void *)(udp + 1) > data_end || l4_len < sizeof(*udp))
		return TG_DROP_UDP_TRUNCATED;
	if (bpf_ntohs(udp->len) < sizeof(*udp) ||
	    (whole && bpf_ntohs(udp->len) > l4_len))
		return TG_DROP_UDP_TRUNCATED;
	out->src_port = udp->source;
	out->dst_port = udp->dest;
	out->tcp_flags = 0;
	return TG_PARSE_OK;
}

#endif /* TG_LIB_PARSE_H */
