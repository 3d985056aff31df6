/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP at the client-facing side (XDP), as a router on the path would do
 * it:
 * - a packet too big for the backend-side MTU (DF set, or any IPv6 packet)
 *   is answered with ICMP "fragmentation needed" / ICMPv6 "packet too big"
 *   carrying that MTU, from the service address, so that the client's TCP
 *   lowers its segment size;
 * - an ICMP error sent to a service address about a packet of a tracked
 *   flow (the client side could not take a reply) goes to that flow's
 *   backend, its quoted header translated back to what the backend sent,
 *   so that the backend learns the path MTU (or the failure).
 * The other direction, errors from the backend side about a client's
 * packet, is the TC program's (tollgate_tc.bpf.c).
 */
#ifndef TG_LIB_ICMP_H
#define TG_LIB_ICMP_H

#include <linux/bpf.h>
#include <linux/icmpv6.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "conntrack.h"
#include "counters.h"
#include "csum.h"
#include "events.h"
#include "forward.h"
#include "maps.h"
#include "parse.h"
#include "steer.h"

/* What an error quotes of the packet it is about: its IP header and the
 * first 8 bytes after it (the ports, and TCP's sequence number), all that
 * RFC 792 asks and every stack needs to find the connection. */
#define TG_ICMP_QUOTED_L4 8

/* linux/icmp.h pulls in libc headers that a BPF build does not have. */
#define TG_ICMP_DEST_UNREACH 3
#define TG_ICMP_PORT_UNREACH 3 /* code */
#define TG_ICMP_FRAG_NEEDED 4 /* code */
#define TG_ICMP_TIME_EXCEEDED 11

struct tg_icmp4_hdr {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__be16 unused;
	__be16 mtu; /* fragmentation needed: the next hop's MTU */
};

struct tg_icmp4_too_big {
	struct iphdr ip;
	struct tg_icmp4_hdr icmp;
	__u8 quote[sizeof(struct iphdr) + TG_ICMP_QUOTED_L4];
};

struct tg_icmp6_too_big {
	struct ipv6hdr ip;
	struct icmp6hdr icmp;
	__u8 quote[sizeof(struct ipv6hdr) + TG_ICMP_QUOTED_L4];
};

/* One's complement sum of `words` 16-bit words at `buf` (on the stack). */
static __always_inline __u32 tg_csum_add_words(__u32 sum, const void *buf,
					       int words)
{
	const __u16 *word = buf;

#pragma unroll
	for (int i = 0; i < words; i++)
		sum += word[i];
	return sum;
}

/* Ethernet and VLAN tags before the IP header (the parser allows two). */
static __always_inline __u32 tg_l2_length(__u8 vlan_depth)
{
	return sizeof(struct ethhdr) +
	       (vlan_depth & 3) * sizeof(struct tg_vlan_hdr);
}

/*
 * Turn the frame (IP header at `l2_len`, still as the client sent it) into
 * the `size` bytes of `message` after its own L2 header, MACs swapped, and
 * send it back where it came from. VLAN tags stay as they were.
 */
static __always_inline int tg_answer_in_place(struct xdp_md *ctx, __u32 l2_len,
					      const void *message, __u32 size)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 mac[ETH_ALEN];
	int delta;

	if ((void *)(eth + 1) > data_end)
		return tg_drop(TG_DROP_INTERNAL);
	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);

	/* The frame's length from the kernel: arithmetic on the packet
	 * pointers here is folded by clang into 32-bit pointer arithmetic,
	 * which the verifier refuses. */
	delta = (int)(l2_len + size) - (int)bpf_xdp_get_buff_len(ctx);
	if (bpf_xdp_adjust_tail(ctx, delta))
		return tg_drop(TG_DROP_INTERNAL);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + l2_len + size > data_end)
		return tg_drop(TG_DROP_INTERNAL);
	__builtin_memcpy(data + l2_len, message, size);
	tg_count_drop(TG_DROP_FRAME_TOO_BIG_ANSWERED);
	return XDP_TX;
}

/* A DF IPv4 packet over the egress `mtu`: ICMP fragmentation needed. */
static __always_inline int lb4_too_big(struct xdp_md *ctx, __u8 vlan_depth,
				       __u16 mtu, __u64 now)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 l2_len = tg_l2_length(vlan_depth);
	struct iphdr *iph = data + l2_len;
	struct tg_icmp4_too_big msg = {};

	if ((void *)iph + sizeof(msg.quote) > data_end)
		return tg_drop(TG_DROP_INTERNAL);
	if (!tg_budget_take(&tg_icmp_budget, TG_ICMP_PER_CPU_SECOND, now))
		return tg_drop(TG_DROP_FRAME_TOO_BIG);
	__builtin_memcpy(msg.quote, iph, sizeof(msg.quote));
	msg.ip.version = 4;
	msg.ip.ihl = 5;
	msg.ip.tos = 0xc0; /* internetwork control, as Linux sends errors */
	msg.ip.tot_len = bpf_htons(sizeof(msg));
	msg.ip.ttl = 64;
	msg.ip.protocol = IPPROTO_ICMP;
	msg.ip.saddr = iph->daddr;
	msg.ip.daddr = iph->saddr;
	msg.ip.check =
		tg_csum_end(tg_csum_add_words(0, &msg.ip, sizeof(msg.ip) / 2));
	msg.icmp.type = TG_ICMP_DEST_UNREACH;
	msg.icmp.code = TG_ICMP_FRAG_NEEDED;
	msg.icmp.mtu = bpf_htons(mtu);
	msg.icmp.checksum = tg_csum_end(tg_csum_add_words(
		0, &msg.icmp, (sizeof(msg) - sizeof(msg.ip)) / 2));
	return tg_answer_in_place(ctx, l2_len, &msg, sizeof(msg));
}

/* An IPv6 packet over the egress `mtu`: ICMPv6 packet too big. */
static __always_inline int lb6_too_big(struct xdp_md *ctx, __u8 vlan_depth,
				       __u16 mtu, __u64 now)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 l2_len = tg_l2_length(vlan_depth);
	struct ipv6hdr *ip6h = data + l2_len;
	struct tg_icmp6_too_big msg = {};
	__u32 sum;

	if ((void *)ip6h + sizeof(msg.quote) > data_end)
		return tg_drop(TG_DROP_INTERNAL);
	if (!tg_budget_take(&tg_icmp_budget, TG_ICMP_PER_CPU_SECOND, now))
		return tg_drop(TG_DROP_FRAME_TOO_BIG);
	__builtin_memcpy(msg.quote, ip6h, sizeof(msg.quote));
	msg.ip.version = 6;
	msg.ip.payload_len = bpf_htons(sizeof(msg) - sizeof(msg.ip));
	msg.ip.nexthdr = IPPROTO_ICMPV6;
	msg.ip.hop_limit = 64;
	__builtin_memcpy(&msg.ip.saddr, &ip6h->daddr, sizeof(msg.ip.saddr));
	__builtin_memcpy(&msg.ip.daddr, &ip6h->saddr, sizeof(msg.ip.daddr));
	msg.icmp.icmp6_type = ICMPV6_PKT_TOOBIG;
	msg.icmp.icmp6_mtu = bpf_htonl(mtu);
	/* The pseudo-header: addresses, upper-layer length, next header. */
	sum = tg_csum_add_words(0, &msg.ip.saddr, 16);
	sum += bpf_htons(sizeof(msg) - sizeof(msg.ip)) +
	       bpf_htons(IPPROTO_ICMPV6);
	sum = tg_csum_add_words(sum, &msg.icmp,
				(sizeof(msg) - sizeof(msg.ip)) / 2);
	msg.icmp.icmp6_cksum = tg_csum_end(sum);
	return tg_answer_in_place(ctx, l2_len, &msg, sizeof(msg));
}

/*
 * The backend of the tracked flow whose reply an ICMP error quotes. The
 * quoted packet went from the service (`key` is built the client's way
 * round by the caller); the flow's backend index and the time in *choice.
 * Returns NULL with *verdict set when the error is
 * not for a backend: XDP_PASS if no service has the quoted port (someone
 * else's), a counted drop if the flow is unknown.
 */
static __always_inline struct tg_backend *
tg_icmp_flow_backend(const struct tg_flow_key *key, int *verdict,
		     struct tg_choice *choice)
{
	struct tg_service *service = tg_lookup_service(key);
	struct tg_config *config;
	struct tg_flow *flow;
	int in_overflow;
	__u32 zero = 0;

	if (!service) {
		*verdict = XDP_PASS;
		return NULL;
	}
	*verdict = XDP_DROP;
	config = bpf_map_lookup_elem(&tg_config, &zero);
	flow = tg_lookup_flow(key, &in_overflow);
	if (!config || !flow) {
		tg_count_drop(TG_DROP_ICMP_UNKNOWN_FLOW);
		return NULL;
	}
	choice->now = bpf_ktime_get_coarse_ns();
	choice->service_id = service->service_id;
	choice->backend_index = flow->backend_index;
	struct tg_backend *backend =
		tg_flow_backend(flow, service->service_id, config, choice->now);
	if (!backend)
		tg_count_drop(TG_DROP_ICMP_UNKNOWN_FLOW);
	return backend;
}

/*
 * An L4 checksum of a quoted header after its source address (sum of the
 * change: `addr_delta`) and port changed; the ICMP checksum, which covers
 * the quoted bytes, follows through *icmp_sum. `udp`: 0 stays 0 (none
 * computed), a computed 0 is sent as all ones.
 */
static __always_inline void tg_quoted_l4_csum(__u16 *check, __u32 addr_delta,
					      __be16 old_port, __be16 new_port,
					      int udp, __u32 *icmp_sum)
{
	__u16 old = *check, new;

	if (udp && old == 0)
		return;
	new = tg_csum_end(tg_csum_word(tg_csum_begin(old) + addr_delta,
				       old_port, new_port));
	if (udp && new == 0)
		new = 0xffff;
	*icmp_sum = tg_csum_word(*icmp_sum, old, new);
	*check = new;
}

/* An ICMPv4 error to a service address (IP header checked, no options). */
static __always_inline int lb4_icmp_error(struct xdp_md *ctx, struct iphdr *iph,
					  __u32 total_length, __u8 vlan_depth)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct tg_icmp4_hdr *icmp = (void *)(iph + 1);
	struct tg_flow_key key = { .family = TG_FAMILY_IPV4 };
	struct bpf_fib_lookup fib = {};
	struct tg_choice choice = {};
	struct tg_backend *backend;
	struct iphdr *inner;
	__be16 *ports;
	__u32 addr_delta, icmp_sum, new_addr;
	__u16 old_check;
	int verdict, rc;

	if ((void *)(icmp + 1) > data_end)
		return XDP_PASS;
	if (icmp->type != TG_ICMP_DEST_UNREACH &&
	    icmp->type != TG_ICMP_TIME_EXCEEDED)
		return XDP_PASS;
	inner = (void *)(icmp + 1);
	ports = (void *)(inner + 1);
	if ((void *)ports + TG_ICMP_QUOTED_L4 > data_end ||
	    total_length < sizeof(*iph) + sizeof(*icmp) + sizeof(*inner) +
				   TG_ICMP_QUOTED_L4)
		return tg_drop(TG_DROP_ICMP_TRUNCATED);
	if (inner->saddr != iph->daddr)
		return XDP_PASS; /* not about a packet from this address */
	if (inner->version != 4 || inner->ihl != 5 ||
	    tg_ntohs_bounded(inner->tot_len) <
		    sizeof(*inner) + TG_ICMP_QUOTED_L4)
		return tg_drop(TG_DROP_ICMP_TRUNCATED);
	if (inner->protocol != IPPROTO_TCP && inner->protocol != IPPROTO_UDP)
		return XDP_PASS;
	if (iph->ttl <= 1)
		return tg_drop(TG_DROP_TTL_EXCEEDED);

	/* The quoted reply went service -> client: the flow is the other way. */
	key.src_addr[0] = inner->daddr;
	key.dst_addr[0] = inner->saddr;
	key.src_port = ports[1];
	key.dst_port = ports[0];
	key.protocol = inner->protocol;
	backend = tg_icmp_flow_backend(&key, &verdict, &choice);
	if (!backend)
		return verdict;

	/* The quoted header as the backend sent it. */
	new_addr = backend->addr[0];
	addr_delta = tg_csum_u32(0, inner->saddr, new_addr);
	icmp_sum = tg_csum_begin(icmp->checksum) + addr_delta;
	old_check = inner->check;
	inner->check = tg_csum_end(tg_csum_begin(old_check) + addr_delta);
	icmp_sum = tg_csum_word(icmp_sum, old_check, inner->check);
	inner->saddr = new_addr;
	if (inner->protocol == IPPROTO_UDP) {
		tg_quoted_l4_csum(&ports[3], addr_delta, ports[0],
				  backend->port, 1, &icmp_sum);
	} else {
		__u16 *check = (void *)ports + 16;

		/* Quoted only when the error carries that much of the reply. */
		if ((void *)(check + 1) <= data_end &&
		    total_length >=
			    sizeof(*iph) + sizeof(*icmp) + sizeof(*inner) + 18)
			tg_quoted_l4_csum(check, addr_delta, ports[0],
					  backend->port, 0, &icmp_sum);
	}
	icmp_sum = tg_csum_word(icmp_sum, ports[0], backend->port);
	ports[0] = backend->port;
	icmp->checksum = tg_csum_end(icmp_sum);

	/* And to the backend. */
	iph->check = tg_csum_end(tg_csum_begin(iph->check) +
				 tg_csum_u32(0, iph->daddr, new_addr));
	iph->daddr = new_addr;
	rc = lb4_next_hop(ctx, iph, &fib, backend, choice.backend_index,
			  choice.now);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return XDP_PASS;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return tg_drop(TG_DROP_FIB_FAILED);
	return lb4_send(ctx, iph, vlan_depth, &fib);
}

/* An ICMPv6 error to a service address (no extension headers). */
static __always_inline int lb6_icmp_error(struct xdp_md *ctx,
					  struct ipv6hdr *ip6h,
					  __u32 payload_length, __u8 vlan_depth)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct icmp6hdr *icmp = (void *)(ip6h + 1);
	struct tg_flow_key key = { .family = TG_FAMILY_IPV6 };
	struct bpf_fib_lookup fib = {};
	struct tg_choice choice = {};
	struct tg_backend *backend;
	struct ipv6hdr *inner;
	__be16 *ports;
	__u32 addr_delta, icmp_sum;
	int verdict, rc;

	if ((void *)(icmp + 1) > data_end)
		return XDP_PASS;
	if (icmp->icmp6_type != ICMPV6_DEST_UNREACH &&
	    icmp->icmp6_type != ICMPV6_PKT_TOOBIG &&
	    icmp->icmp6_type != ICMPV6_TIME_EXCEED)
		return XDP_PASS;
	inner = (void *)(icmp + 1);
	ports = (void *)(inner + 1);
	if ((void *)ports + TG_ICMP_QUOTED_L4 > data_end ||
	    payload_length < sizeof(*icmp) + sizeof(*inner) + TG_ICMP_QUOTED_L4)
		return tg_drop(TG_DROP_ICMP_TRUNCATED);
	__builtin_memcpy(key.dst_addr, inner->saddr.in6_u.u6_addr32, 16);
	if (!tg_addr6_equal(key.dst_addr, ip6h->daddr.in6_u.u6_addr32))
		return XDP_PASS; /* not about a packet from this address */
	if (inner->version != 6 ||
	    tg_ntohs_bounded(inner->payload_len) < TG_ICMP_QUOTED_L4)
		return tg_drop(TG_DROP_ICMP_TRUNCATED);
	if (inner->nexthdr != IPPROTO_TCP && inner->nexthdr != IPPROTO_UDP)
		return XDP_PASS;
	if (ip6h->hop_limit <= 1)
		return tg_drop(TG_DROP_TTL_EXCEEDED);

	__builtin_memcpy(key.src_addr, inner->daddr.in6_u.u6_addr32, 16);
	key.src_port = ports[1];
	key.dst_port = ports[0];
	key.protocol = inner->nexthdr;
	backend = tg_icmp_flow_backend(&key, &verdict, &choice);
	if (!backend)
		return verdict;

	/* The service address changes twice in the ICMPv6 checksum: as the
	 * outer destination (pseudo-header) and as the quoted source. */
	addr_delta = tg_csum_addr6(0, key.dst_addr, backend->addr);
	icmp_sum = tg_csum_begin(icmp->icmp6_cksum) + addr_delta + addr_delta;
	if (inner->nexthdr == IPPROTO_UDP) {
		tg_quoted_l4_csum(&ports[3], addr_delta, ports[0],
				  backend->port, 1, &icmp_sum);
	} else {
		__u16 *check = (void *)ports + 16;

		if ((void *)(check + 1) <= data_end &&
		    payload_length >= sizeof(*icmp) + sizeof(*inner) + 18)
			tg_quoted_l4_csum(check, addr_delta, ports[0],
					  backend->port, 0, &icmp_sum);
	}
	icmp_sum = tg_csum_word(icmp_sum, ports[0], backend->port);
	ports[0] = backend->port;
	icmp->icmp6_cksum = tg_csum_end(icmp_sum);
	__builtin_memcpy(inner->saddr.in6_u.u6_addr32, backend->addr, 16);
	__builtin_memcpy(ip6h->daddr.in6_u.u6_addr32, backend->addr, 16);

	rc = lb6_next_hop(ctx, ip6h, &fib, backend, choice.backend_index,
			  choice.now);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return XDP_PASS;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return tg_drop(TG_DROP_FIB_FAILED);
	return lb6_send(ctx, ip6h, vlan_depth, &fib);
}

#endif /* TG_LIB_ICMP_H */
