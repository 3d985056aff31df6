/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Destination NAT: service address and port -> backend address and port. */
#ifndef TG_LIB_NAT_H
#define TG_LIB_NAT_H

#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>

#include "csum.h"
#include "tollgate_abi.h"

/*
 * Rewrite the L4 destination port and fold `pseudo_delta` (the change of
 * the pseudo-header's destination address) into the L4 checksum.
 * Returns 0, or -1 if the header is not in the packet.
 * Verifier workaround: tg_parse_l4() checked these bounds already, but the
 * compiler merges the TCP and UDP paths and the verifier loses them; each
 * branch checks again, with its own header type.
 */
static __always_inline int tg_l4_dnat(void *l4, void *data_end, __u8 protocol,
				      __u32 pseudo_delta, __be16 new_port,
				      int udp_checksum_optional)
{
	__u32 sum;

	if (protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end)
			return -1;
		sum = tg_csum_begin(tcp->check) + pseudo_delta;
		sum = tg_csum_word(sum, tcp->dest, new_port);
		tcp->check = tg_csum_end(sum);
		tcp->dest = new_port;
		return 0;
	}

	struct udphdr *udp = l4;
	__u16 check;

	if ((void *)(udp + 1) > data_end)
		return -1;
	/* UDP/IPv4 checksum 0: none was computed, and none is added. */
	if (udp->check == 0 && udp_checksum_optional) {
		udp->dest = new_port;
		return 0;
	}
	sum = tg_csum_begin(udp->check) + pseudo_delta;
	sum = tg_csum_word(sum, udp->dest, new_port);
	check = tg_csum_end(sum);
	/* In UDP a computed 0 is sent as all ones (0 means "none"). */
	udp->check = check ? check : 0xffff;
	udp->dest = new_port;
	return 0;
}

/*
 * The destination address only: a later fragment, which has no L4 header
 * (the first fragment's L4 checksum covers the pseudo-header).
 */
static __always_inline void lb4_dnat_address(struct iphdr *iph,
					     const struct tg_backend *backend)
{
	__u32 delta = tg_csum_u32(0, iph->daddr, backend->addr[0]);

	iph->check = tg_csum_end(tg_csum_begin(iph->check) + delta);
	iph->daddr = backend->addr[0];
}

static __always_inline void lb6_dnat_address(struct ipv6hdr *ip6h,
					     const struct tg_backend *backend)
{
	__u32 *daddr = ip6h->daddr.in6_u.u6_addr32;

#pragma unroll
	for (int i = 0; i < 4; i++)
		daddr[i] = backend->addr[i];
}

/* Address, port and L4 checksum of a whole packet or first fragment. */
static __always_inline int lb4_dnat(struct iphdr *iph, void *l4, void *data_end,
				    const struct tg_backend *backend)
{
	__u32 delta = tg_csum_u32(0, iph->daddr, backend->addr[0]);

	if (tg_l4_dnat(l4, data_end, iph->protocol, delta, backend->port, 1))
		return -1;
	lb4_dnat_address(iph, backend);
	return 0;
}

/* `protocol`: the L4 header at `l4` (after a fragment header, if any). */
static __always_inline int lb6_dnat(struct ipv6hdr *ip6h, void *l4,
				    void *data_end, __u8 protocol,
				    const struct tg_backend *backend)
{
	__u32 delta =
		tg_csum_addr6(0, ip6h->daddr.in6_u.u6_addr32, backend->addr);

	if (tg_l4_dnat(l4, data_end, protocol, delta, backend->port, 0))
		return -1;
	lb6_dnat_address(ip6h, backend);
	return 0;
}

#endif /* TG_LIB_NAT_H */
