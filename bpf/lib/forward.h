/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Forwarding after NAT: next hop from the kernel FIB, TTL/hop limit, the
 * Ethernet header, then XDP_TX or a redirect.
 */
#ifndef TG_LIB_FORWARD_H
#define TG_LIB_FORWARD_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "counters.h"
#include "csum.h"
#include "parse.h"

/*
 * Write the new Ethernet header. VLAN tags are removed: the FIB answers
 * with the egress device, which carries its own tagging.
 */
static __always_inline int tg_set_l2(struct xdp_md *ctx, __u8 vlan_depth,
				     __be16 ether_type,
				     const struct bpf_fib_lookup *fib)
{
	void *data, *data_end;
	struct ethhdr *eth;

	if (vlan_depth &&
	    bpf_xdp_adjust_head(ctx, vlan_depth * sizeof(struct tg_vlan_hdr)))
		return -1;
	/* adjust_head invalidates every packet pointer: derive them again. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return -1;
	__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
	eth->h_proto = ether_type;
	return 0;
}

static __always_inline int tg_transmit(struct xdp_md *ctx, __u32 ifindex)
{
	if (ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(ifindex, 0);
}

/*
 * The FIB's answer for a packet to `backend` (already NAT'd): from the
 * per-CPU cache while it holds, else a bpf_fib_lookup() that refills it.
 * Returns BPF_FIB_LKUP_RET_SUCCESS with fib->ifindex and the MACs set.
 */
static __always_inline int tg_fib(struct xdp_md *ctx,
				  struct bpf_fib_lookup *fib,
				  const struct tg_backend *backend,
				  __u32 backend_index, __u64 now)
{
	struct tg_fib_entry *entry =
		bpf_map_lookup_elem(&tg_fib_cache, &backend_index);
	int rc;

	if (entry && entry->expires_ns > now &&
	    entry->generation == backend->generation &&
	    entry->ingress_ifindex == ctx->ingress_ifindex &&
	    fib->tot_len <= entry->mtu) {
		fib->ifindex = entry->ifindex;
		__builtin_memcpy(fib->smac, entry->smac, ETH_ALEN);
		__builtin_memcpy(fib->dmac, entry->dmac, ETH_ALEN);
		return BPF_FIB_LKUP_RET_SUCCESS;
	}
	fib->ifindex = ctx->ingress_ifindex;
	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS || !entry)
		return rc;
	/* On success the kernel put the egress MTU where tot_len was. */
	entry->expires_ns = now + TG_FIB_CACHE_NS;
	entry->generation = backend->generation;
	entry->ingress_ifindex = ctx->ingress_ifindex;
	entry->ifindex = fib->ifindex;
	entry->mtu = fib->mtu_result;
	__builtin_memcpy(entry->smac, fib->smac, ETH_ALEN);
	__builtin_memcpy(entry->dmac, fib->dmac, ETH_ALEN);
	return rc;
}

/*
 * The next hop towards `backend` of an IPv4 packet (not yet translated):
 * the FIB's answer. Returns BPF_FIB_LKUP_RET_*; on FRAG_NEEDED,
 * fib->mtu_result is the egress MTU.
 */
static __always_inline int lb4_next_hop(struct xdp_md *ctx,
					const struct iphdr *iph,
					struct bpf_fib_lookup *fib,
					const struct tg_backend *backend,
					__u32 backend_index, __u64 now)
{
	fib->family = TG_AF_INET;
	fib->tos = iph->tos;
	fib->l4_protocol = iph->protocol;
	fib->tot_len = bpf_ntohs(iph->tot_len);
	fib->ipv4_src = iph->saddr;
	fib->ipv4_dst = backend->addr[0];
	return tg_fib(ctx, fib, backend, backend_index, now);
}

static __always_inline int lb6_next_hop(struct xdp_md *ctx,
					const struct ipv6hdr *ip6h,
					struct bpf_fib_lookup *fib,
					const struct tg_backend *backend,
					__u32 backend_index, __u64 now)
{
	fib->family = TG_AF_INET6;
	fib->flowinfo = *(__be32 *)ip6h & bpf_htonl(0x0fffffff);
	fib->l4_protocol = ip6h->nexthdr;
	fib->tot_len = bpf_ntohs(ip6h->payload_len) + sizeof(*ip6h);
	__builtin_memcpy(fib->ipv6_src, ip6h->saddr.in6_u.u6_addr32, 16);
	__builtin_memcpy(fib->ipv6_dst, backend->addr, 16);
	return tg_fib(ctx, fib, backend, backend_index, now);
}

/* Send a translated IPv4 packet to the FIB's next hop (a router hop). */
static __always_inline int lb4_send(struct xdp_md *ctx, struct iphdr *iph,
				    __u8 vlan_depth,
				    const struct bpf_fib_lookup *fib)
{
	__u16 *ttl_word = (__u16 *)&iph->ttl;
	__u16 old_ttl_word = *ttl_word;

	iph->ttl -= 1;
	iph->check = tg_csum_end(tg_csum_word(tg_csum_begin(iph->check),
					      old_ttl_word, *ttl_word));
	if (tg_set_l2(ctx, vlan_depth, bpf_htons(ETH_P_IP), fib))
		return tg_drop(TG_DROP_INTERNAL);
	return tg_transmit(ctx, fib->ifindex);
}

static __always_inline int lb6_send(struct xdp_md *ctx, struct ipv6hdr *ip6h,
				    __u8 vlan_depth,
				    const struct bpf_fib_lookup *fib)
{
	ip6h->hop_limit -= 1;
	if (tg_set_l2(ctx, vlan_depth, bpf_htons(ETH_P_IPV6), fib))
		return tg_drop(TG_DROP_INTERNAL);
	return tg_transmit(ctx, fib->ifindex);
}

#endif /* TG_LIB_FORWARD_H */
