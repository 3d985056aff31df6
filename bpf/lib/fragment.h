/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Fragments. A datagram's first fragment carries its ports and so goes
 * where any packet of its flow goes; the translation it got is kept in
 * tg_fragments under what every fragment carries (addresses, IP id,
 * protocol), and the later fragments get the same, their addresses only.
 * The first fragment's L4 checksum covers the whole datagram, so its
 * incremental update stays right once the backend reassembles it. A later
 * fragment seen before its first (or long after it) is dropped: it cannot
 * be placed, and the sender retransmits the datagram whole.
 */
#ifndef TG_LIB_FRAGMENT_H
#define TG_LIB_FRAGMENT_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"
#include "parse.h"

/* struct frag_hdr is kernel-internal; this is the IPv6 fragment header. */
struct tg_frag6_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset in 8-byte units << 3, bit 0: more follow */
	__be32 identification;
};

#define TG_IP6_MF 0x0001
#define TG_IP6_OFFSET 0xfff8

/* Where a packet stands: not a fragment, a first fragment, a later one. */
enum tg_fragment_kind {
	TG_WHOLE = 0,
	TG_FIRST_FRAGMENT,
	TG_LATER_FRAGMENT,
};

static __always_inline int tg_ipv4_fragment_kind(const struct iphdr *iph)
{
	if (iph->frag_off & bpf_htons(TG_IP_OFFSET))
		return TG_LATER_FRAGMENT;
	return (iph->frag_off & bpf_htons(TG_IP_MF)) ? TG_FIRST_FRAGMENT
						     : TG_WHOLE;
}

/* An atomic fragment (offset 0, no more to come) is a first one. */
static __always_inline int tg_ipv6_fragment_kind(const struct tg_frag6_hdr *f)
{
	return (f->frag_off & bpf_htons(TG_IP6_OFFSET)) ? TG_LATER_FRAGMENT
							: TG_FIRST_FRAGMENT;
}

/* The key of a fragment's datagram, into a zeroed `key`. */
static __always_inline void tg_fragment_key4(const struct iphdr *iph,
					     struct tg_fragment_key *key)
{
	key->src_addr[0] = iph->saddr;
	key->dst_addr[0] = iph->daddr;
	key->id = iph->id;
	key->protocol = iph->protocol;
	key->family = TG_FAMILY_IPV4;
}

static __always_inline void tg_fragment_key6(const struct ipv6hdr *ip6h,
					     const struct tg_frag6_hdr *frag,
					     struct tg_fragment_key *key)
{
	__builtin_memcpy(key->src_addr, ip6h->saddr.in6_u.u6_addr32, 16);
	__builtin_memcpy(key->dst_addr, ip6h->daddr.in6_u.u6_addr32, 16);
	key->id = frag->identification;
	key->protocol = frag->nexthdr;
	key->family = TG_FAMILY_IPV6;
}

/*
 * The first fragment of `key`'s datagram went to `backend_index` (or, with
 * TG_FRAGMENT_PASS, to the stack); later ones get `addr`. A first fragment
 * seen again (the sender retransmitted) takes its entry over.
 */
static __always_inline void
tg_remember_fragments(const struct tg_fragment_key *key, const __u32 *addr,
		      __u32 service_id, __u32 backend_index,
		      __u32 backend_generation, __u64 now)
{
	struct tg_fragment fragment = {
		.first_seen_ns = now,
		.service_id = service_id,
		.backend_index = backend_index,
		.backend_generation = backend_generation,
	};

	if (addr)
		__builtin_memcpy(fragment.addr, addr, sizeof(fragment.addr));
	bpf_map_update_elem(&tg_fragments, key, &fragment, BPF_ANY);
}

/* What the first fragment of a later one's datagram got; NULL: unknown. */
static __always_inline struct tg_fragment *
tg_fragment_lookup(const struct tg_fragment_key *key, __u64 now)
{
	struct tg_fragment *fragment = bpf_map_lookup_elem(&tg_fragments, key);

	if (!fragment || now - fragment->first_seen_ns > TG_FRAGMENT_TIMEOUT_NS)
		return NULL;
	return fragment;
}

#endif /* TG_LIB_FRAGMENT_H */
