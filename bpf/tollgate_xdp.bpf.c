// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tollgate XDP program, client-facing interface: parse, service lookup,
 * connection tracking, backend selection, destination NAT, forward.
 * Anything not addressed to a service passes untouched.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/counters.h"
#include "lib/forward.h"
#include "lib/icmp.h"
#include "lib/maps.h"
#include "lib/nat.h"
#include "lib/parse.h"
#include "lib/steer.h"

/* IPv6 next-header values that are extension headers. */
static __always_inline int lb6_is_extension_header(__u8 nexthdr)
{
	switch (nexthdr) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_DSTOPTS:
	case IPPROTO_AH:
	case IPPROTO_ESP:
	case 135: /* Mobility */
	case 139: /* HIP */
	case 140: /* Shim6 */
		return 1;
	default:
		return 0;
	}
}

static __always_inline int lb4_handle(struct xdp_md *ctx, struct iphdr *iph,
				      __u8 vlan_depth)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct tg_flow_key key = { .family = TG_FAMILY_IPV4 };
	struct bpf_fib_lookup fib = {};
	struct tg_choice choice = {};
	struct tg_backend *backend;
	struct tg_service *service;
	struct tg_l4 l4 = {};
	int rc, drop_reason;
	__u32 total_length;
	__u64 bytes;

	if ((void *)(iph + 1) > data_end)
		return tg_drop(TG_DROP_IPV4_TRUNCATED);
	key.dst_addr[0] = iph->daddr;
	if (!tg_is_vip_address(key.dst_addr, TG_FAMILY_IPV4))
		return XDP_PASS;

	if (iph->version != 4 || iph->ihl < 5)
		return tg_drop(TG_DROP_IPV4_BAD_IHL);
	total_length = tg_ntohs_bounded(iph->tot_len);
	if (total_length < iph->ihl * 4)
		return tg_drop(TG_DROP_IPV4_BAD_IHL);
	if ((void *)iph + total_length > data_end)
		return tg_drop(TG_DROP_IPV4_TRUNCATED);
	if (tg_ipv4_is_fragment(iph))
		return tg_drop(TG_DROP_IPV4_FRAGMENT);
	if (iph->ihl != 5)
		return tg_drop(TG_DROP_IPV4_OPTIONS);
	if (iph->protocol == IPPROTO_ICMP)
		return lb4_icmp_error(ctx, iph, total_length, vlan_depth);
	if (iph->protocol != IPPROTO_TCP && iph->protocol != IPPROTO_UDP)
		return XDP_PASS;

	rc = tg_parse_l4(iph + 1, data_end, iph->protocol,
			 total_length - sizeof(*iph), &l4);
	if (rc != TG_PARSE_OK)
		return tg_drop(rc);

	key.src_addr[0] = iph->saddr;
	key.src_port = l4.src_port;
	key.dst_port = l4.dst_port;
	key.protocol = iph->protocol;
	service = tg_lookup_service(&key);
	if (!service)
		return XDP_PASS;
	if (iph->ttl <= 1)
		return tg_drop(TG_DROP_TTL_EXCEEDED);

	bytes = data_end - (void *)(long)ctx->data;
	backend = tg_steer(service, &key, l4.tcp_flags, bytes, &drop_reason,
			   &choice);
	if (!backend && drop_reason == TG_DROP_SYN_CHALLENGED)
		return lb4_syn_auth(ctx, iph, &key, l4.tcp_flags, vlan_depth);
	if (!backend)
		return tg_drop(drop_reason);

	rc = lb4_next_hop(ctx, iph, &fib, backend, choice.backend_index,
			  choice.now);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED &&
	    (iph->frag_off & bpf_htons(TG_IP_DF)))
		return lb4_too_big(ctx, vlan_depth, fib.mtu_result, choice.now);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH &&
	    rc != BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return tg_drop(TG_DROP_FIB_FAILED);
	if (lb4_dnat(iph, iph + 1, data_end, backend))
		return tg_drop(TG_DROP_INTERNAL);
	tg_count_sent(&choice, bytes);
	/* No neighbour entry yet, or too big without DF: the kernel forwards
	 * the translated packet, resolving the neighbour for the next ones or
	 * fragmenting it as a router does. */
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return XDP_PASS;
	return lb4_send(ctx, iph, vlan_depth, &fib);
}

static __always_inline int lb6_handle(struct xdp_md *ctx, struct ipv6hdr *ip6h,
				      __u8 vlan_depth)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct tg_flow_key key = { .family = TG_FAMILY_IPV6 };
	struct bpf_fib_lookup fib = {};
	struct tg_choice choice = {};
	struct tg_backend *backend;
	struct tg_service *service;
	struct tg_l4 l4 = {};
	int rc, drop_reason;
	__u32 payload_length;
	__u64 bytes;

	if ((void *)(ip6h + 1) > data_end)
		return tg_drop(TG_DROP_IPV6_TRUNCATED);
	__builtin_memcpy(key.dst_addr, ip6h->daddr.in6_u.u6_addr32, 16);
	if (!tg_is_vip_address(key.dst_addr, TG_FAMILY_IPV6))
		return XDP_PASS;
	if (ip6h->version != 6)
		return tg_drop(TG_DROP_IPV6_BAD_VERSION);

	payload_length = tg_ntohs_bounded(ip6h->payload_len);
	if ((void *)(ip6h + 1) + payload_length > data_end)
		return tg_drop(TG_DROP_IPV6_TRUNCATED);
	if (ip6h->nexthdr == IPPROTO_FRAGMENT)
		return tg_drop(TG_DROP_IPV6_FRAGMENT);
	if (lb6_is_extension_header(ip6h->nexthdr))
		return tg_drop(TG_DROP_IPV6_EXT_HEADER);
	if (ip6h->nexthdr == IPPROTO_ICMPV6)
		return lb6_icmp_error(ctx, ip6h, payload_length, vlan_depth);
	if (ip6h->nexthdr != IPPROTO_TCP && ip6h->nexthdr != IPPROTO_UDP)
		return XDP_PASS;

	rc = tg_parse_l4(ip6h + 1, data_end, ip6h->nexthdr, payload_length,
			 &l4);
	if (rc != TG_PARSE_OK)
		return tg_drop(rc);
	if (ip6h->nexthdr == IPPROTO_UDP &&
	    ((struct udphdr *)(ip6h + 1))->check == 0)
		return tg_drop(TG_DROP_UDP6_ZERO_CHECKSUM);

	__builtin_memcpy(key.src_addr, ip6h->saddr.in6_u.u6_addr32, 16);
	key.src_port = l4.src_port;
	key.dst_port = l4.dst_port;
	key.protocol = ip6h->nexthdr;
	service = tg_lookup_service(&key);
	if (!service)
		return XDP_PASS;
	if (ip6h->hop_limit <= 1)
		return tg_drop(TG_DROP_TTL_EXCEEDED);

	bytes = data_end - (void *)(long)ctx->data;
	backend = tg_steer(service, &key, l4.tcp_flags, bytes, &drop_reason,
			   &choice);
	if (!backend)
		return tg_drop(drop_reason);

	/* IPv6 routers never fragment: every packet too big is answered. */
	rc = lb6_next_hop(ctx, ip6h, &fib, backend, choice.backend_index,
			  choice.now);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return lb6_too_big(ctx, vlan_depth, fib.mtu_result, choice.now);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return tg_drop(TG_DROP_FIB_FAILED);
	if (lb6_dnat(ip6h, ip6h + 1, data_end, backend))
		return tg_drop(TG_DROP_INTERNAL);
	tg_count_sent(&choice, bytes);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return XDP_PASS;
	return lb6_send(ctx, ip6h, vlan_depth, &fib);
}

SEC("xdp")
int tg_xdp_balancer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor cursor = { .pos = data };
	__be16 ether_type = 0;
	__u8 vlan_depth = 0;
	int rc;

	rc = tg_parse_eth(&cursor, data_end, &ether_type, &vlan_depth);
	if (rc != TG_PARSE_OK)
		return tg_drop(rc);
	if (ether_type == bpf_htons(ETH_P_IP))
		return lb4_handle(ctx, cursor.pos, vlan_depth);
	if (ether_type == bpf_htons(ETH_P_IPV6))
		return lb6_handle(ctx, cursor.pos, vlan_depth);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
