/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * SYN authentication (TG_POLICY_SYN_AUTH, see maps/tollgate_abi.h): the
 * gateway answers a SYN from a source not yet proven with a SYN-ACK whose
 * acknowledgment number is a cookie; the client, finding it wrong, answers
 * with an RST whose sequence number is that cookie, which proves it sees
 * what is sent to its address. Its SYN retransmission then goes through.
 * While unproven, a source's TCP packets without a flow reach no backend.
 * IPv4 only: IPv6 goes the usual way; a tagged frame gets no challenge.
 */
#ifndef TG_LIB_SYNAUTH_H
#define TG_LIB_SYNAUTH_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "conntrack.h"
#include "counters.h"
#include "csum.h"
#include "hash.h"
#include "maps.h"

/* Set at load time from a random source (userspace/loader.cpp). */
const volatile __u32 tg_syn_secret[2] = {};

static __always_inline __u32 tg_syn_cookie(const struct iphdr *iph,
					   const struct tcphdr *tcp, __u64 slot)
{
	__u32 hash = TG_HASH_SEED ^ tg_syn_secret[0];

	hash = tg_hash_mix(hash, iph->saddr);
	hash = tg_hash_mix(hash, iph->daddr);
	hash = tg_hash_mix(hash, ((__u32)tcp->source << 16) | tcp->dest);
	hash = tg_hash_mix(hash, (__u32)slot);
	hash = tg_hash_mix(hash, tg_syn_secret[1]);
	return tg_hash_final(hash, 20);
}

/* Turns the SYN in ctx (Ethernet, IPv4 without options, TCP) into the
 * challenge SYN-ACK back to its sender. */
static __always_inline int lb4_syn_challenge(struct xdp_md *ctx, __u32 cookie)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	const int length = sizeof(struct ethhdr) + sizeof(struct iphdr) +
			   sizeof(struct tcphdr);
	int extra = (int)(data_end - data) - length;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct tcphdr *tcp;
	__u8 mac[ETH_ALEN];
	__u32 sum = 0;
	__be32 address;
	__be16 port;
	__s64 tcp_sum;

	if (extra > 0 && bpf_xdp_adjust_tail(ctx, -extra))
		return tg_drop(TG_DROP_INTERNAL);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	iph = (void *)(eth + 1);
	tcp = (void *)(iph + 1);
	if ((void *)(tcp + 1) > data_end)
		return tg_drop(TG_DROP_INTERNAL);

	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);

	address = iph->saddr;
	iph->saddr = iph->daddr;
	iph->daddr = address;
	iph->tos = 0;
	iph->tot_len = bpf_htons(sizeof(*iph) + sizeof(*tcp));
	iph->id = 0;
	iph->frag_off = bpf_htons(0x4000); /* DF */
	iph->ttl = 64;
	iph->check = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += ((__u16 *)iph)[i];
	iph->check = (__u16)~tg_csum_fold(sum);

	port = tcp->source;
	tcp->source = tcp->dest;
	tcp->dest = port;
	tcp->ack_seq = bpf_htonl(cookie);
	tcp->seq = bpf_htonl(cookie ^ 0x74676174); /* ours; never used */
	((__u8 *)tcp)[12] = 5 << 4; /* no options */
	((__u8 *)tcp)[13] = TG_TCP_SYN | TG_TCP_ACK;
	tcp->window = bpf_htons(1024);
	tcp->urg_ptr = 0;
	tcp->check = 0;
	tcp_sum = bpf_csum_diff(0, 0, (__be32 *)tcp, sizeof(*tcp), 0);
	if (tcp_sum < 0)
		return tg_drop(TG_DROP_INTERNAL);
	sum = (__u32)tcp_sum;
	sum = tg_csum_fold(sum) + (iph->saddr & 0xffff) + (iph->saddr >> 16) +
	      (iph->daddr & 0xffff) + (iph->daddr >> 16) +
	      bpf_htons(IPPROTO_TCP) + bpf_htons(sizeof(*tcp));
	tcp->check = (__u16)~tg_csum_fold(sum);
	return XDP_TX;
}

/* Whether the packet's source answered a challenge (IPv4). */
static __always_inline int tg_source_proven(const struct tg_flow_key *key)
{
	struct tg_source_key source = { .family = TG_FAMILY_IPV4 };

	source.addr[0] = key->src_addr[0];
	return bpf_map_lookup_elem(&tg_verified_sources, &source) != NULL;
}

/*
 * A TCP packet with no flow, from an unproven source, to a service with SYN
 * authentication (tg_steer decided): a SYN gets a challenge, the RST that
 * returns a challenge's cookie proves its source, anything else is dropped.
 */
static __always_inline int lb4_syn_auth(struct xdp_md *ctx, struct iphdr *iph,
					const struct tg_flow_key *key,
					__u8 tcp_flags, __u8 vlan_depth)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct tcphdr *tcp = (void *)(iph + 1);
	struct tg_source_key source = { .family = TG_FAMILY_IPV4 };
	__u64 now = bpf_ktime_get_coarse_ns();
	__u64 slot = now >> TG_SYN_COOKIE_SLOT_SHIFT;
	__u32 seq, cookie;

	if ((void *)(tcp + 1) > data_end)
		return tg_drop(TG_DROP_TCP_TRUNCATED);
	seq = bpf_ntohl(tcp->seq);
	if (tcp_flags & TG_TCP_RST) {
		if (seq != tg_syn_cookie(iph, tcp, slot) &&
		    seq != tg_syn_cookie(iph, tcp, slot - 1))
			return tg_drop(TG_DROP_SYN_UNPROVEN);
		source.addr[0] = key->src_addr[0];
		bpf_map_update_elem(&tg_verified_sources, &source, &now,
				    BPF_ANY);
		return tg_drop(TG_DROP_SYN_PROOF);
	}
	cookie = tg_syn_cookie(iph, tcp, slot);
	/* A cookie the client would take for the right answer (one in 2^32):
	 * no challenge; its retransmission may fall in the next slot. */
	if ((tcp_flags & (TG_TCP_SYN | TG_TCP_ACK)) != TG_TCP_SYN ||
	    cookie == seq + 1 || vlan_depth)
		return tg_drop(TG_DROP_SYN_UNPROVEN);
	tg_drop(TG_DROP_SYN_CHALLENGED);
	return lb4_syn_challenge(ctx, cookie);
}

#endif /* TG_LIB_SYNAUTH_H */
