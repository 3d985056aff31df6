// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tollgate TC program, backend-facing interface (ingress): a backend's
 * reply to a NAT'd flow gets the service address and port back as its
 * source and is forwarded to the client. Anything else is left alone.
 *
 * Checksums go through the kernel's skb helpers, not by hand: a reply from
 * a local sender (a veth peer) carries CHECKSUM_PARTIAL, where the L4 field
 * holds only the pseudo-header sum; bpf_l4_csum_replace() with
 * BPF_F_PSEUDO_HDR updates such a field correctly, and a hand-made full
 * update would corrupt it.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/conntrack.h"
#include "lib/counters.h"
#include "lib/maps.h"
#include "lib/parse.h"

/* Ethernet + IPv6 + TCP: all a reply needs in the linear area. */
#define TG_REPLY_HEADERS                                                       \
	(sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + sizeof(struct tcphdr))

#define TG_ETH_LEN sizeof(struct ethhdr)
#define TG_IP4_CHECK_OFF (TG_ETH_LEN + offsetof(struct iphdr, check))
#define TG_IP4_SADDR_OFF (TG_ETH_LEN + offsetof(struct iphdr, saddr))
#define TG_IP4_TTL_OFF (TG_ETH_LEN + offsetof(struct iphdr, ttl))
#define TG_IP6_SADDR_OFF (TG_ETH_LEN + offsetof(struct ipv6hdr, saddr))
#define TG_IP6_HOPS_OFF (TG_ETH_LEN + offsetof(struct ipv6hdr, hop_limit))

static __always_inline __u32 tg_l4_check_offset(__u32 l4_offset, __u8 protocol)
{
	return l4_offset + (protocol == IPPROTO_TCP
				    ? offsetof(struct tcphdr, check)
				    : offsetof(struct udphdr, check));
}

/* UDP: a zero checksum stays zero, a computed zero becomes all ones. */
static __always_inline __u64 tg_l4_csum_flags(__u8 protocol)
{
	return protocol == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* The translation of a reply: established flows first, then new ones. */
static __always_inline struct tg_reverse_nat *
tg_reply_nat(const struct tg_flow_key *reply)
{
	struct tg_reverse_nat *nat =
		bpf_map_lookup_elem(&tg_reverse_flows, reply);

	return nat ? nat : bpf_map_lookup_elem(&tg_new_reverse, reply);
}

/*
 * A backend that answers a flow's SYN with RST refused the connection:
 * counted for passive ejection, once (the flow is closing after it).
 */
static __always_inline void tg_note_refusal(const struct tg_flow_key *reply,
					    const struct tg_reverse_nat *nat,
					    __u8 tcp_flags)
{
	struct tg_flow_key forward = {
		.src_port = reply->dst_port,
		.dst_port = nat->port,
		.protocol = reply->protocol,
		.family = reply->family,
	};
	struct tg_flow *flow;

	if (reply->protocol != IPPROTO_TCP || !(tcp_flags & TG_TCP_RST))
		return;
	__builtin_memcpy(forward.src_addr, reply->dst_addr,
			 sizeof(forward.src_addr));
	__builtin_memcpy(forward.dst_addr, nat->addr, sizeof(forward.dst_addr));
	flow = bpf_map_lookup_elem(&tg_new_flows, &forward);
	if (!flow)
		flow = bpf_map_lookup_elem(&tg_flows, &forward);
	if (!flow || flow->state != TG_FLOW_TCP_SYN)
		return;
	tg_count_health(flow->backend_index, TG_HEALTH_SYN_RESET);
	flow->state = TG_FLOW_TCP_CLOSING;
}

/*
 * Next hop for the translated reply. The TTL is spent here because this is
 * a router hop. Without a neighbour entry, bpf_redirect_neigh() resolves it
 * rather than handing the packet to the stack (and to netfilter).
 */
static __always_inline int tg_reply_forward(struct __sk_buff *skb,
					    struct bpf_fib_lookup *fib)
{
	int rc = bpf_fib_lookup(skb, fib, sizeof(*fib), 0);

	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_OK; /* let the kernel route (or refuse) it */

	if (fib->family == TG_AF_INET) {
		__u8 ttl;
		__u16 old_word, new_word;

		if (bpf_skb_load_bytes(skb, TG_IP4_TTL_OFF, &old_word, 2))
			return TC_ACT_OK;
		ttl = ((__u8 *)&old_word)[0];
		if (ttl <= 1)
			return TC_ACT_OK; /* the kernel sends time exceeded */
		new_word = old_word;
		((__u8 *)&new_word)[0] = ttl - 1;
		bpf_l3_csum_replace(skb, TG_IP4_CHECK_OFF, old_word, new_word,
				    2);
		bpf_skb_store_bytes(skb, TG_IP4_TTL_OFF, &new_word, 2, 0);
	} else {
		__u8 hops;

		if (bpf_skb_load_bytes(skb, TG_IP6_HOPS_OFF, &hops, 1))
			return TC_ACT_OK;
		if (hops <= 1)
			return TC_ACT_OK;
		hops -= 1;
		bpf_skb_store_bytes(skb, TG_IP6_HOPS_OFF, &hops, 1, 0);
	}

	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib->ifindex, NULL, 0, 0);
	bpf_skb_store_bytes(skb, 0, fib->dmac, ETH_ALEN, 0);
	bpf_skb_store_bytes(skb, ETH_ALEN, fib->smac, ETH_ALEN, 0);
	return bpf_redirect(fib->ifindex, 0);
}

static __always_inline int lb4_reply(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *iph = data + TG_ETH_LEN;
	struct tg_flow_key key = { .family = TG_FAMILY_IPV4 };
	struct bpf_fib_lookup fib = {};
	struct tg_reverse_nat *nat;
	struct tg_l4 l4 = {};
	__u32 l4_offset, check_offset, old_addr, new_addr;
	__u64 csum_flags;
	__u8 protocol;

	if ((void *)(iph + 1) > data_end || iph->ihl != 5 ||
	    tg_ipv4_is_fragment(iph))
		return TC_ACT_OK;
	protocol = iph->protocol;
	if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
		return TC_ACT_OK;
	if (tg_parse_l4(iph + 1, data_end, protocol,
			bpf_ntohs(iph->tot_len) - sizeof(*iph),
			&l4) != TG_PARSE_OK)
		return TC_ACT_OK;

	key.src_addr[0] = iph->saddr;
	key.dst_addr[0] = iph->daddr;
	key.src_port = l4.src_port;
	key.dst_port = l4.dst_port;
	key.protocol = protocol;
	nat = tg_reply_nat(&key);
	if (!nat)
		return TC_ACT_OK;
	tg_note_refusal(&key, nat, l4.tcp_flags);

	old_addr = iph->saddr;
	new_addr = nat->addr[0];
	l4_offset = TG_ETH_LEN + sizeof(*iph);
	check_offset = tg_l4_check_offset(l4_offset, protocol);
	csum_flags = tg_l4_csum_flags(protocol);
	bpf_l4_csum_replace(skb, check_offset, old_addr, new_addr,
			    BPF_F_PSEUDO_HDR | csum_flags | sizeof(new_addr));
	bpf_l4_csum_replace(skb, check_offset, l4.src_port, nat->port,
			    csum_flags | sizeof(nat->port));
	bpf_l3_csum_replace(skb, TG_IP4_CHECK_OFF, old_addr, new_addr,
			    sizeof(new_addr));
	bpf_skb_store_bytes(skb, TG_IP4_SADDR_OFF, &new_addr, sizeof(new_addr),
			    0);
	bpf_skb_store_bytes(skb, l4_offset, &nat->port, sizeof(nat->port), 0);

	fib.family = TG_AF_INET;
	fib.l4_protocol = protocol;
	fib.ipv4_src = new_addr;
	fib.ipv4_dst = key.dst_addr[0];
	fib.ifindex = skb->ifindex; /* at ingress: the arrival device */
	/* tot_len 0: the helper checks the skb itself against the MTU, which
	 * accepts GSO packets (a backend's TCP sends them). */
	return tg_reply_forward(skb, &fib);
}

static __always_inline int lb6_reply(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6h = data + TG_ETH_LEN;
	struct tg_flow_key key = { .family = TG_FAMILY_IPV6 };
	struct bpf_fib_lookup fib = {};
	struct tg_reverse_nat *nat;
	struct tg_l4 l4 = {};
	__u32 l4_offset, check_offset;
	__s64 diff;
	__u64 csum_flags;
	__u8 protocol;

	if ((void *)(ip6h + 1) > data_end)
		return TC_ACT_OK;
	protocol = ip6h->nexthdr;
	if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
		return TC_ACT_OK;
	if (tg_parse_l4(ip6h + 1, data_end, protocol,
			bpf_ntohs(ip6h->payload_len), &l4) != TG_PARSE_OK)
		return TC_ACT_OK;

	__builtin_memcpy(key.src_addr, ip6h->saddr.in6_u.u6_addr32, 16);
	__builtin_memcpy(key.dst_addr, ip6h->daddr.in6_u.u6_addr32, 16);
	key.src_port = l4.src_port;
	key.dst_port = l4.dst_port;
	key.protocol = protocol;
	nat = tg_reply_nat(&key);
	if (!nat)
		return TC_ACT_OK;
	struct tg_reverse_nat restore = *nat;
	tg_note_refusal(&key, &restore, l4.tcp_flags);

	l4_offset = TG_ETH_LEN + sizeof(*ip6h);
	check_offset = tg_l4_check_offset(l4_offset, protocol);
	csum_flags = tg_l4_csum_flags(protocol);
	diff = bpf_csum_diff(key.src_addr, 16, restore.addr, 16, 0);
	if (diff < 0)
		return TC_ACT_OK;
	bpf_l4_csum_replace(skb, check_offset, 0, diff,
			    BPF_F_PSEUDO_HDR | csum_flags);
	bpf_l4_csum_replace(skb, check_offset, l4.src_port, restore.port,
			    csum_flags | sizeof(restore.port));
	bpf_skb_store_bytes(skb, TG_IP6_SADDR_OFF, restore.addr, 16, 0);
	bpf_skb_store_bytes(skb, l4_offset, &restore.port, sizeof(restore.port),
			    0);

	fib.family = TG_AF_INET6;
	fib.l4_protocol = protocol;
	__builtin_memcpy(fib.ipv6_src, restore.addr, 16);
	__builtin_memcpy(fib.ipv6_dst, key.dst_addr, 16);
	fib.ifindex = skb->ifindex; /* at ingress: the arrival device */
	return tg_reply_forward(skb, &fib);
}

SEC("tc")
int tg_tc_reply(struct __sk_buff *skb)
{
	void *data, *data_end;
	struct hdr_cursor cursor;
	__be16 ether_type = 0;
	__u8 vlan_depth = 0;

	/* Headers may sit in paged data; pull what a reply needs. */
	if (skb->data + TG_REPLY_HEADERS > skb->data_end)
		bpf_skb_pull_data(skb, TG_REPLY_HEADERS);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	cursor.pos = data;
	if (tg_parse_eth(&cursor, data_end, &ether_type, &vlan_depth) !=
		    TG_PARSE_OK ||
	    vlan_depth)
		return TC_ACT_OK;
	if (ether_type == bpf_htons(ETH_P_IP))
		return lb4_reply(skb);
	if (ether_type == bpf_htons(ETH_P_IPV6))
		return lb6_reply(skb);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
