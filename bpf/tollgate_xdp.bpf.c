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
#include "lib/fragment.h"
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

/*
 * Translate an IPv4 packet steered to `backend` and send it on. `kind`: a
 * whole packet or first fragment (port and L4 checksum too; a first
 * fragment's translation is kept under `fragment` for the later ones), or
 * a later fragment (the address only).
 */
static __always_inline int
lb4_forward(struct xdp_md *ctx, struct iphdr *iph, __u8 vlan_depth,
	    const struct tg_backend *backend, const struct tg_choice *choice,
	    int kind, const struct tg_fragment_key *fragment, __u64 bytes)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct bpf_fib_lookup fib = {};
	int rc;

	rc = lb4_next_hop(ctx, iph, &fib, backend, choice->backend_index,
			  choice->now);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED &&
	    (iph->frag_off & bpf_htons(TG_IP_DF)))
		return lb4_too_big(ctx, vlan_depth, fib.mtu_result,
				   choice->now);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH &&
	    rc != BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return tg_drop(TG_DROP_FIB_FAILED);
	if (kind == TG_FIRST_FRAGMENT)
		tg_remember_fragments(fragment, backend->addr,
				      choice->service_id, choice->backend_index,
				      backend->generation, choice->now);
	if (kind == TG_LATER_FRAGMENT)
		lb4_dnat_address(iph, backend);
	else if (lb4_dnat(iph, iph + 1, data_end, backend))
		return tg_drop(TG_DROP_INTERNAL);
	tg_count_sent(choice, bytes);
	/* No neighbour entry yet, or too big without DF: the kernel forwards
	 * the translated packet, resolving the neighbour for the next ones or
	 * fragmenting it as a router does. */
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return XDP_PASS;
	return lb4_send(ctx, iph, vlan_depth, &fib);
}

/* IPv6 routers never fragment: every packet too big is answered. */
static __always_inline int lb6_forward(struct xdp_md *ctx, struct ipv6hdr *ip6h,
				       void *l4, __u8 protocol, __u8 vlan_depth,
				       const struct tg_backend *backend,
				       const struct tg_choice *choice, int kind,
				       const struct tg_fragment_key *fragment,
				       __u64 bytes)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct bpf_fib_lookup fib = {};
	int rc;

	rc = lb6_next_hop(ctx, ip6h, &fib, backend, choice->backend_index,
			  choice->now);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return lb6_too_big(ctx, vlan_depth, fib.mtu_result,
				   choice->now);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return tg_drop(TG_DROP_FIB_FAILED);
	if (kind == TG_FIRST_FRAGMENT)
		tg_remember_fragments(fragment, backend->addr,
				      choice->service_id, choice->backend_index,
				      backend->generation, choice->now);
	if (kind == TG_LATER_FRAGMENT)
		lb6_dnat_address(ip6h, backend);
	else if (lb6_dnat(ip6h, l4, data_end, protocol, backend))
		return tg_drop(TG_DROP_INTERNAL);
	tg_count_sent(choice, bytes);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return XDP_PASS;
	return lb6_send(ctx, ip6h, vlan_depth, &fib);
}

/* A datagram of no service: its fragments pass (remembered only for a
 * service address: a later fragment to one is dropped unless known). */
static __always_inline int tg_pass_datagram(const struct tg_fragment_key *key,
					    int kind)
{
	if (kind == TG_FIRST_FRAGMENT &&
	    tg_is_vip_address(key->dst_addr, key->family))
		tg_remember_fragments(key, NULL, 0, TG_FRAGMENT_PASS, 0,
				      bpf_ktime_get_coarse_ns());
	return XDP_PASS;
}

static __always_inline int lb4_handle(struct xdp_md *ctx, struct iphdr *iph,
				      __u8 vlan_depth)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct tg_flow_key key = { .family = TG_FAMILY_IPV4 };
	struct tg_fragment_key fragment = {};
	struct tg_choice choice = {};
	struct tg_backend *backend;
	struct tg_service *service;
	struct tg_l4 l4 = {};
	int rc, drop_reason, kind;
	__u32 total_length;
	__u64 bytes;

	if ((void *)(iph + 1) > data_end)
		return tg_drop(TG_DROP_IPV4_TRUNCATED);
	key.dst_addr[0] = iph->daddr;
	if (!tg_may_be_vip(key.dst_addr))
		return XDP_PASS;

	if (iph->version != 4 || iph->ihl < 5)
		return tg_drop_if_vip(key.dst_addr, TG_FAMILY_IPV4,
				      TG_DROP_IPV4_BAD_IHL);
	total_length = tg_ntohs_bounded(iph->tot_len);
	if (total_length < iph->ihl * 4)
		return tg_drop_if_vip(key.dst_addr, TG_FAMILY_IPV4,
				      TG_DROP_IPV4_BAD_IHL);
	if ((void *)iph + total_length > data_end)
		return tg_drop_if_vip(key.dst_addr, TG_FAMILY_IPV4,
				      TG_DROP_IPV4_TRUNCATED);
	if (iph->ihl != 5)
		return tg_drop_if_vip(key.dst_addr, TG_FAMILY_IPV4,
				      TG_DROP_IPV4_OPTIONS);
	bytes = data_end - (void *)(long)ctx->data;
	kind = tg_ipv4_fragment_kind(iph);
	if (kind != TG_WHOLE)
		tg_fragment_key4(iph, &fragment);
	if (kind == TG_LATER_FRAGMENT) {
		backend = tg_steer_fragment(&fragment, bytes, &drop_reason,
					    &choice);
		if (!backend)
			return drop_reason ? tg_drop_if_vip(key.dst_addr,
							    TG_FAMILY_IPV4,
							    drop_reason)
					   : XDP_PASS;
		if (iph->ttl <= 1)
			return tg_drop(TG_DROP_TTL_EXCEEDED);
		return lb4_forward(ctx, iph, vlan_depth, backend, &choice, kind,
				   &fragment, bytes);
	}
	if (iph->protocol == IPPROTO_ICMP && kind == TG_WHOLE)
		return tg_is_vip_address(key.dst_addr, TG_FAMILY_IPV4)
			       ? lb4_icmp_error(ctx, iph, total_length,
						vlan_depth)
			       : XDP_PASS;
	if (iph->protocol != IPPROTO_TCP && iph->protocol != IPPROTO_UDP)
		return tg_pass_datagram(&fragment, kind);

	rc = tg_parse_l4(iph + 1, data_end, iph->protocol,
			 total_length - sizeof(*iph), kind == TG_WHOLE, &l4);
	if (rc != TG_PARSE_OK)
		return tg_drop_if_vip(key.dst_addr, TG_FAMILY_IPV4, rc);

	key.src_addr[0] = iph->saddr;
	key.src_port = l4.src_port;
	key.dst_port = l4.dst_port;
	key.protocol = iph->protocol;
	service = tg_lookup_service(&key);
	if (!service)
		return tg_pass_datagram(&fragment, kind);
	if (iph->ttl <= 1)
		return tg_drop(TG_DROP_TTL_EXCEEDED);

	backend = tg_steer(service, &key, l4.tcp_flags, bytes, &drop_reason,
			   &choice);
	if (!backend && drop_reason == TG_DROP_SYN_CHALLENGED)
		return lb4_syn_auth(ctx, iph, &key, l4.tcp_flags, vlan_depth);
	if (!backend)
		return tg_drop(drop_reason);
	return lb4_forward(ctx, iph, vlan_depth, backend, &choice, kind,
			   &fragment, bytes);
}

static __always_inline int lb6_handle(struct xdp_md *ctx, struct ipv6hdr *ip6h,
				      __u8 vlan_depth)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct tg_flow_key key = { .family = TG_FAMILY_IPV6 };
	struct tg_fragment_key fragment = {};
	struct tg_choice choice = {};
	struct tg_backend *backend;
	struct tg_service *service;
	struct tg_l4 l4 = {};
	int rc, drop_reason, kind = TG_WHOLE;
	__u32 payload_length, l4_length;
	__u8 protocol;
	void *l4_header;
	__u64 bytes;

	if ((void *)(ip6h + 1) > data_end)
		return tg_drop(TG_DROP_IPV6_TRUNCATED);
	__builtin_memcpy(key.dst_addr, ip6h->daddr.in6_u.u6_addr32, 16);
	if (!tg_may_be_vip(key.dst_addr))
		return XDP_PASS;
	if (ip6h->version != 6)
		return tg_drop_if_vip(key.dst_addr, TG_FAMILY_IPV6,
				      TG_DROP_IPV6_BAD_VERSION);

	payload_length = tg_ntohs_bounded(ip6h->payload_len);
	if ((void *)(ip6h + 1) + payload_length > data_end)
		return tg_drop_if_vip(key.dst_addr, TG_FAMILY_IPV6,
				      TG_DROP_IPV6_TRUNCATED);
	protocol = ip6h->nexthdr;
	l4_header = ip6h + 1;
	l4_length = payload_length;
	if (protocol == IPPROTO_FRAGMENT) {
		struct tg_frag6_hdr *frag = l4_header;

		if ((void *)(frag + 1) > data_end ||
		    payload_length < sizeof(*frag))
			return tg_drop_if_vip(key.dst_addr, TG_FAMILY_IPV6,
					      TG_DROP_IPV6_TRUNCATED);
		kind = tg_ipv6_fragment_kind(frag);
		tg_fragment_key6(ip6h, frag, &fragment);
		protocol = frag->nexthdr;
		l4_header = frag + 1;
		l4_length = payload_length - sizeof(*frag);
	}
	if (lb6_is_extension_header(protocol) || protocol == IPPROTO_FRAGMENT)
		return tg_drop_if_vip(key.dst_addr, TG_FAMILY_IPV6,
				      TG_DROP_IPV6_EXT_HEADER);
	bytes = data_end - (void *)(long)ctx->data;
	if (kind == TG_LATER_FRAGMENT) {
		backend = tg_steer_fragment(&fragment, bytes, &drop_reason,
					    &choice);
		if (!backend)
			return drop_reason ? tg_drop_if_vip(key.dst_addr,
							    TG_FAMILY_IPV6,
							    drop_reason)
					   : XDP_PASS;
		if (ip6h->hop_limit <= 1)
			return tg_drop(TG_DROP_TTL_EXCEEDED);
		return lb6_forward(ctx, ip6h, l4_header, protocol, vlan_depth,
				   backend, &choice, kind, &fragment, bytes);
	}
	if (protocol == IPPROTO_ICMPV6 && kind == TG_WHOLE)
		return tg_is_vip_address(key.dst_addr, TG_FAMILY_IPV6)
			       ? lb6_icmp_error(ctx, ip6h, payload_length,
						vlan_depth)
			       : XDP_PASS;
	if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
		return tg_pass_datagram(&fragment, kind);

	rc = tg_parse_l4(l4_header, data_end, protocol, l4_length,
			 kind == TG_WHOLE, &l4);
	if (rc != TG_PARSE_OK)
		return tg_drop_if_vip(key.dst_addr, TG_FAMILY_IPV6, rc);
	if (protocol == IPPROTO_UDP) {
		struct udphdr *udp = l4_header;

		if ((void *)(udp + 1) > data_end)
			return tg_drop_if_vip(key.dst_addr, TG_FAMILY_IPV6,
					      TG_DROP_UDP_TRUNCATED);
		if (udp->check == 0)
			return tg_drop_if_vip(key.dst_addr, TG_FAMILY_IPV6,
					      TG_DROP_UDP6_ZERO_CHECKSUM);
	}

	__builtin_memcpy(key.src_addr, ip6h->saddr.in6_u.u6_addr32, 16);
	key.src_port = l4.src_port;
	key.dst_port = l4.dst_port;
	key.protocol = protocol;
	service = tg_lookup_service(&key);
	if (!service)
		return tg_pass_datagram(&fragment, kind);
	if (ip6h->hop_limit <= 1)
		return tg_drop(TG_DROP_TTL_EXCEEDED);

	backend = tg_steer(service, &key, l4.tcp_flags, bytes, &drop_reason,
			   &choice);
	if (!backend)
		return tg_drop(drop_reason);
	return lb6_forward(ctx, ip6h, l4_header, protocol, vlan_depth, backend,
			   &choice, kind, &fragment, bytes);
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
