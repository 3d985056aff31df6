// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tollgate TC program, backend-facing interface (ingress): a backend's
 * reply to a NAT'd flow gets the service address and port back as its
 * source and is forwarded to the client. A packet from a backend's service
 * port that matches no flow is dropped (it would leak the backend's
 * address); anything else is left alone.
 *
 * Checksums go through the kernel's skb helpers, not by hand: a reply from
 * a local sender (a veth peer) carries CHECKSUM_PARTIAL, where the L4 field
 * holds only the pseudo-header sum; bpf_l4_csum_replace() with
 * BPF_F_PSEUDO_HDR updates such a field correctly, and a hand-made full
 * update would corrupt it.
 */
#include <linux/bpf.h>
#include <linux/icmpv6.h>
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
#include "lib/csum.h"
#include "lib/fragment.h"
#include "lib/icmp.h"
#include "lib/maps.h"
#include "lib/parse.h"

/* All a reply needs in the linear area: Ethernet, IPv6, and an ICMPv6
 * error up to its quoted TCP checksum. */
#define TG_REPLY_HEADERS                                                       \
	(sizeof(struct ethhdr) + 2 * sizeof(struct ipv6hdr) + 8 + 18)

#define TG_ETH_LEN sizeof(struct ethhdr)
#define TG_IP4_CHECK_OFF (TG_ETH_LEN + offsetof(struct iphdr, check))
#define TG_IP4_SADDR_OFF (TG_ETH_LEN + offsetof(struct iphdr, saddr))
#define TG_IP6_SADDR_OFF (TG_ETH_LEN + offsetof(struct ipv6hdr, saddr))

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

/* Whether `flow` went to the backend that sent `reply`. */
static __always_inline int tg_flow_sent_to(const struct tg_flow *flow,
					   const struct tg_flow_key *reply)
{
	__u32 index = flow->backend_index;
	struct tg_backend *backend = bpf_map_lookup_elem(&tg_backends, &index);

	return backend && backend->port == reply->src_port &&
	       tg_addr6_equal(backend->addr, reply->src_addr);
}

enum {
	TG_REPLY_FOUND,
	TG_REPLY_NO_FLOW, /* from a backend endpoint, of no flow */
	TG_REPLY_NOT_A_BACKEND, /* from an endpoint no service sends to */
};

/*
 * The flow a reply belongs to: *nat gets what its client addressed, *flow
 * the flow's entry (NULL when only the reverse entry of a flow is left).
 * The backend that sent it names its services (tg_backend_endpoints), and
 * the flow is the one among theirs, client -> service, that went to that
 * backend. An endpoint holds one connection per client address and port at
 * a time (its own 4-tuple), so at most one of them matches. Flows of the
 * services it does not list (of every port, or beyond its list) have
 * reverse entries.
 */
static __always_inline int tg_reply_flow(const struct tg_flow_key *reply,
					 struct tg_reverse_nat *nat,
					 struct tg_flow **flow)
{
	struct tg_backend_endpoint endpoint = {
		.port = reply->src_port,
		.family = reply->family,
		.protocol = reply->protocol,
	};
	struct tg_flow_key forward = {
		.src_port = reply->dst_port,
		.protocol = reply->protocol,
		.family = reply->family,
	};
	struct tg_endpoint_services *services;
	struct tg_reverse_nat *reverse;
	int in_overflow;
	__u32 i;

	__builtin_memcpy(endpoint.addr, reply->src_addr, sizeof(endpoint.addr));
	services = bpf_map_lookup_elem(&tg_backend_endpoints, &endpoint);
	if (!services)
		return TG_REPLY_NOT_A_BACKEND;
	__builtin_memcpy(forward.src_addr, reply->dst_addr,
			 sizeof(forward.src_addr));
	for (i = 0; i < TG_ENDPOINT_SERVICES && i < services->count; i++) {
		const struct tg_endpoint_service *service =
			&services->services[i];

		if (!service->port)
			continue; /* every port: its reverse entry, below */
		__builtin_memcpy(forward.dst_addr, service->addr,
				 sizeof(forward.dst_addr));
		forward.dst_port = service->port;
		*flow = tg_lookup_flow(&forward, &in_overflow);
		if (*flow && tg_flow_sent_to(*flow, reply)) {
			__builtin_memcpy(nat->addr, service->addr,
					 sizeof(nat->addr));
			nat->port = service->port;
			nat->family = reply->family;
			nat->backend_index = (*flow)->backend_index;
			return TG_REPLY_FOUND;
		}
	}
	reverse = bpf_map_lookup_elem(&tg_reverse_flows, reply);
	if (!reverse)
		return TG_REPLY_NO_FLOW;
	*nat = *reverse;
	__builtin_memcpy(forward.dst_addr, nat->addr, sizeof(forward.dst_addr));
	forward.dst_port = nat->port;
	*flow = tg_lookup_flow(&forward, &in_overflow);
	return TG_REPLY_FOUND;
}

/*
 * What a reply tells of its backend's health. A UDP datagram is an answer.
 * A backend that answers a flow's SYN with RST refused the connection:
 * counted for passive ejection, once (the flow is closing after it).
 */
static __always_inline void tg_note_reply(const struct tg_flow_key *reply,
					  const struct tg_reverse_nat *nat,
					  struct tg_flow *flow, __u8 tcp_flags)
{
	if (reply->protocol == IPPROTO_UDP) {
		tg_count_health(nat->backend_index, TG_HEALTH_UDP_REPLY);
		return;
	}
	if (!(tcp_flags & TG_TCP_RST) || !flow ||
	    flow->state != TG_FLOW_TCP_SYN)
		return;
	tg_count_health(flow->backend_index, TG_HEALTH_SYN_RESET);
	flow->state = TG_FLOW_TCP_CLOSING;
	tg_flow_uncount(flow);
}

/* The FIB lookup of a packet from `src` to `dst`, arrived on `ifindex`. */
static __always_inline void tg_reply_fib(struct bpf_fib_lookup *fib,
					 __u8 family, __u8 protocol,
					 const __u32 *src, const __u32 *dst,
					 __u32 ifindex)
{
	fib->l4_protocol = protocol;
	fib->ifindex = ifindex;
	if (family == TG_FAMILY_IPV4) {
		fib->family = TG_AF_INET;
		fib->ipv4_src = src[0];
		fib->ipv4_dst = dst[0];
	} else {
		fib->family = TG_AF_INET6;
		__builtin_memcpy(fib->ipv6_src, src, 16);
		__builtin_memcpy(fib->ipv6_dst, dst, 16);
	}
}

/*
 * A packet that matches no flow. From a backend's service port to a
 * client, it is a late answer to a flow that moved to another backend (L4
 * retry) or expired: forwarded as it is, it would reach the client from
 * the backend's own address, so it is dropped. What goes to the gateway
 * itself (health checks' answers), what the kernel would not forward and
 * what no backend port sent pass.
 */
static __always_inline int tg_reply_unknown(struct __sk_buff *skb,
					    const struct tg_flow_key *key,
					    int found)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	if (found == TG_REPLY_NOT_A_BACKEND)
		return TC_ACT_OK;
	tg_reply_fib(&fib, key->family, key->protocol, key->src_addr,
		     key->dst_addr, skb->ifindex);
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH &&
	    rc != BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return TC_ACT_OK;
	tg_count_drop(TG_DROP_REPLY_NO_FLOW);
	return TC_ACT_SHOT;
}

/*
 * The FIB's answer for a reply set up by tg_reply_fib(): from this CPU's
 * tg_reply_hops while it holds, else a bpf_fib_lookup() that refills it.
 * A GSO packet is always looked up: the helper checks each of its
 * segments against the MTU, and its one lookup serves them all.
 */
static __always_inline int tg_reply_next_hop(struct __sk_buff *skb,
					     struct bpf_fib_lookup *fib)
{
	__u32 client[4] = { fib->ipv6_dst[0], fib->ipv6_dst[1],
			    fib->ipv6_dst[2], fib->ipv6_dst[3] };
	__u8 family =
		fib->family == TG_AF_INET ? TG_FAMILY_IPV4 : TG_FAMILY_IPV6;
	__u32 slot, ingress = skb->ifindex;
	struct tg_reply_hop *hop;
	__u64 now;
	int rc;

	if (family == TG_FAMILY_IPV4) {
		client[0] = fib->ipv4_dst;
		client[1] = client[2] = client[3] = 0;
	}
	slot = tg_reply_hop_slot(client);
	hop = bpf_map_lookup_elem(&tg_reply_hops, &slot);
	if (!hop || skb->gso_size)
		return bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
	now = bpf_ktime_get_coarse_ns();
	if (hop->expires_ns > now && hop->family == family &&
	    hop->ingress_ifindex == ingress &&
	    skb->len <= TG_ETH_LEN + hop->mtu &&
	    tg_addr6_equal(hop->addr, client)) {
		fib->ifindex = hop->ifindex;
		__builtin_memcpy(fib->smac, hop->smac, ETH_ALEN);
		__builtin_memcpy(fib->dmac, hop->dmac, ETH_ALEN);
		return BPF_FIB_LKUP_RET_SUCCESS;
	}
	rc = bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return rc;
	/* On success the kernel put the egress MTU where tot_len was. */
	hop->expires_ns = now + TG_FIB_CACHE_NS;
	__builtin_memcpy(hop->addr, client, sizeof(hop->addr));
	hop->ingress_ifindex = ingress;
	hop->ifindex = fib->ifindex;
	hop->mtu = fib->mtu_result;
	hop->family = family;
	__builtin_memcpy(hop->smac, fib->smac, ETH_ALEN);
	__builtin_memcpy(hop->dmac, fib->dmac, ETH_ALEN);
	return rc;
}

/*
 * The route to the client, looked up before anything is translated: a
 * reply that cannot go on is left as the backend sent it. `df`: the
 * packet may not be fragmented (IPv4 DF, every IPv6 packet). Returns -1
 * to go on (translate, then tg_reply_send()), else the verdict. fib->tot_len
 * stays 0: the helper checks the skb itself against the MTU, which
 * accepts GSO packets (a backend's TCP sends them).
 */
static __always_inline int tg_reply_route(struct __sk_buff *skb,
					  struct bpf_fib_lookup *fib, int df,
					  __u8 ttl, int *rc)
{
	*rc = tg_reply_next_hop(skb, fib);
	if (*rc == BPF_FIB_LKUP_RET_FRAG_NEEDED && df) {
		/* The kernel's forwarding answers the backend with ICMP too big
		 * about its own packet, and drops it. */
		tg_count_drop(TG_DROP_REPLY_TOO_BIG);
		return TC_ACT_OK;
	}
	if (*rc != BPF_FIB_LKUP_RET_SUCCESS &&
	    *rc != BPF_FIB_LKUP_RET_NO_NEIGH &&
	    *rc != BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		tg_count_drop(TG_DROP_REPLY_NO_ROUTE);
		return TC_ACT_SHOT;
	}
	if (ttl <= 1)
		return TC_ACT_OK; /* the kernel sends the backend time exceeded */
	return -1;
}

/*
 * Send the translated reply on the route tg_reply_route() found. The TTL
 * is spent here because this is a router hop. Without a neighbour entry,
 * bpf_redirect_neigh() resolves it rather than handing the packet to the
 * stack (and to netfilter); too big without DF, the kernel fragments it.
 */
static __always_inline int tg_reply_send(struct __sk_buff *skb,
					 struct bpf_fib_lookup *fib, int rc)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return TC_ACT_OK;
	if (fib->family == TG_AF_INET) {
		struct iphdr *iph = data + TG_ETH_LEN;
		__u16 *ttl_word = (__u16 *)&iph->ttl;
		__u16 old_word;

		if ((void *)(iph + 1) > data_end)
			return TC_ACT_OK;
		old_word = *ttl_word;
		iph->ttl -= 1;
		iph->check = tg_csum_end(tg_csum_word(tg_csum_begin(iph->check),
						      old_word, *ttl_word));
	} else {
		struct ipv6hdr *ip6h = data + TG_ETH_LEN;

		if ((void *)(ip6h + 1) > data_end)
			return TC_ACT_OK;
		ip6h->hop_limit -= 1;
	}

	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib->ifindex, NULL, 0, 0);
	if ((void *)(eth + 1) > data_end)
		return TC_ACT_OK;
	__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
	return bpf_redirect(fib->ifindex, 0);
}

/*
 * A later fragment of a backend's reply: the service address its first
 * fragment got (tg_fragments). One whose first was not seen is left alone:
 * it may be anything the backend's host sends.
 */
static __always_inline int tg_reply_fragment(struct __sk_buff *skb,
					     const struct tg_fragment_key *key,
					     __u8 ttl)
{
	struct tg_fragment *found =
		tg_fragment_lookup(key, bpf_ktime_get_coarse_ns());
	struct bpf_fib_lookup fib = {};
	__u32 addr[4];
	int rc, verdict;

	if (!found)
		return TC_ACT_OK;
	__builtin_memcpy(addr, found->addr, sizeof(addr));
	tg_reply_fib(&fib, key->family, key->protocol, addr, key->dst_addr,
		     skb->ifindex);
	/* IPv4 fragments carry no DF: too big, the kernel fragments them. */
	verdict = tg_reply_route(skb, &fib, key->family == TG_FAMILY_IPV6, ttl,
				 &rc);
	if (verdict >= 0)
		return verdict;
	if (key->family == TG_FAMILY_IPV4) {
		bpf_l3_csum_replace(skb, TG_IP4_CHECK_OFF, key->src_addr[0],
				    addr[0], sizeof(addr[0]));
		bpf_skb_store_bytes(skb, TG_IP4_SADDR_OFF, &addr[0],
				    sizeof(addr[0]), 0);
	} else {
		bpf_skb_store_bytes(skb, TG_IP6_SADDR_OFF, addr, sizeof(addr),
				    0);
	}
	return tg_reply_send(skb, &fib, rc);
}

/*
 * An ICMP error from the backend side about a client's packet (the
 * backend's port is closed, a router there cannot take it): the quoted
 * packet went client -> backend, translated. The error reaches the client
 * as if about the packet it sent, to the service; when the backend itself
 * sent it, from the service address. A UDP port unreachable from the
 * backend counts for passive ejection.
 */
static __always_inline int lb4_reply_icmp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *iph = data + TG_ETH_LEN;
	struct tg_icmp4_hdr *icmp = (void *)(iph + 1);
	struct iphdr *inner = (void *)(icmp + 1);
	__be16 *ports = (void *)(inner + 1);
	struct tg_flow_key key = { .family = TG_FAMILY_IPV4 };
	struct bpf_fib_lookup fib = {};
	struct tg_reverse_nat nat = {};
	struct tg_flow *flow = NULL;
	__u32 addr_delta, icmp_sum, backend_addr, total_length;
	__u16 old_check;
	int rc, verdict, from_backend;

	if ((void *)ports + TG_ICMP_QUOTED_L4 > data_end)
		return TC_ACT_OK;
	if (icmp->type != TG_ICMP_DEST_UNREACH &&
	    icmp->type != TG_ICMP_TIME_EXCEEDED)
		return TC_ACT_OK;
	if (inner->version != 4 || inner->ihl != 5 ||
	    inner->saddr != iph->daddr ||
	    (inner->protocol != IPPROTO_TCP && inner->protocol != IPPROTO_UDP))
		return TC_ACT_OK;
	total_length = tg_ntohs_bounded(iph->tot_len);
	if (total_length <
	    sizeof(*iph) + sizeof(*icmp) + sizeof(*inner) + TG_ICMP_QUOTED_L4)
		return TC_ACT_OK;

	/* The reply direction of the quoted packet names the flow. */
	backend_addr = inner->daddr;
	key.src_addr[0] = backend_addr;
	key.dst_addr[0] = inner->saddr;
	key.src_port = ports[1];
	key.dst_port = ports[0];
	key.protocol = inner->protocol;
	if (tg_reply_flow(&key, &nat, &flow) != TG_REPLY_FOUND)
		return TC_ACT_OK;
	from_backend = iph->saddr == backend_addr;
	if (from_backend && inner->protocol == IPPROTO_UDP &&
	    icmp->type == TG_ICMP_DEST_UNREACH &&
	    icmp->code == TG_ICMP_PORT_UNREACH)
		tg_count_health(nat.backend_index, TG_HEALTH_UDP_UNREACHABLE);

	fib.family = TG_AF_INET;
	fib.l4_protocol = IPPROTO_ICMP;
	fib.ipv4_src = from_backend ? nat.addr[0] : iph->saddr;
	fib.ipv4_dst = iph->daddr;
	fib.ifindex = skb->ifindex;
	verdict = tg_reply_route(skb, &fib, 1, iph->ttl, &rc);
	if (verdict >= 0)
		return verdict;
	/* The route lookup may have moved the data: derive the pointers. */
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	iph = data + TG_ETH_LEN;
	icmp = (void *)(iph + 1);
	inner = (void *)(icmp + 1);
	ports = (void *)(inner + 1);
	if ((void *)ports + TG_ICMP_QUOTED_L4 > data_end)
		return TC_ACT_OK;

	/* The quoted packet as the client sent it. */
	addr_delta = tg_csum_u32(0, backend_addr, nat.addr[0]);
	icmp_sum = tg_csum_begin(icmp->checksum) + addr_delta;
	old_check = inner->check;
	inner->check = tg_csum_end(tg_csum_begin(old_check) + addr_delta);
	icmp_sum = tg_csum_word(icmp_sum, old_check, inner->check);
	inner->daddr = nat.addr[0];
	if (inner->protocol == IPPROTO_UDP) {
		tg_quoted_l4_csum(&ports[3], addr_delta, ports[1], nat.port, 1,
				  &icmp_sum);
	} else {
		__u16 *check = (void *)ports + 16;

		if ((void *)(check + 1) <= data_end &&
		    total_length >=
			    sizeof(*iph) + sizeof(*icmp) + sizeof(*inner) + 18)
			tg_quoted_l4_csum(check, addr_delta, ports[1], nat.port,
					  0, &icmp_sum);
	}
	icmp_sum = tg_csum_word(icmp_sum, ports[1], nat.port);
	ports[1] = nat.port;
	icmp->checksum = tg_csum_end(icmp_sum);
	if (from_backend) {
		iph->check =
			tg_csum_end(tg_csum_begin(iph->check) +
				    tg_csum_u32(0, iph->saddr, nat.addr[0]));
		iph->saddr = nat.addr[0];
	}
	return tg_reply_send(skb, &fib, rc);
}

static __always_inline int lb6_reply_icmp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6h = data + TG_ETH_LEN;
	struct icmp6hdr *icmp = (void *)(ip6h + 1);
	struct ipv6hdr *inner = (void *)(icmp + 1);
	__be16 *ports = (void *)(inner + 1);
	struct tg_flow_key key = { .family = TG_FAMILY_IPV6 };
	struct bpf_fib_lookup fib = {};
	struct tg_reverse_nat nat = {};
	struct tg_flow *flow = NULL;
	__u32 addr_delta, icmp_sum, payload_length;
	int rc, verdict, from_backend;

	if ((void *)ports + TG_ICMP_QUOTED_L4 > data_end)
		return TC_ACT_OK;
	if (icmp->icmp6_type != ICMPV6_DEST_UNREACH &&
	    icmp->icmp6_type != ICMPV6_PKT_TOOBIG &&
	    icmp->icmp6_type != ICMPV6_TIME_EXCEED)
		return TC_ACT_OK;
	if (inner->version != 6 ||
	    (inner->nexthdr != IPPROTO_TCP && inner->nexthdr != IPPROTO_UDP))
		return TC_ACT_OK;
	payload_length = tg_ntohs_bounded(ip6h->payload_len);
	if (payload_length < sizeof(*icmp) + sizeof(*inner) + TG_ICMP_QUOTED_L4)
		return TC_ACT_OK;

	__builtin_memcpy(key.src_addr, inner->daddr.in6_u.u6_addr32, 16);
	__builtin_memcpy(key.dst_addr, inner->saddr.in6_u.u6_addr32, 16);
	if (!tg_addr6_equal(key.dst_addr, ip6h->daddr.in6_u.u6_addr32))
		return TC_ACT_OK;
	key.src_port = ports[1];
	key.dst_port = ports[0];
	key.protocol = inner->nexthdr;
	if (tg_reply_flow(&key, &nat, &flow) != TG_REPLY_FOUND)
		return TC_ACT_OK;
	from_backend =
		tg_addr6_equal(ip6h->saddr.in6_u.u6_addr32, key.src_addr);
	if (from_backend && inner->nexthdr == IPPROTO_UDP &&
	    icmp->icmp6_type == ICMPV6_DEST_UNREACH &&
	    icmp->icmp6_code == ICMPV6_PORT_UNREACH)
		tg_count_health(nat.backend_index, TG_HEALTH_UDP_UNREACHABLE);

	fib.family = TG_AF_INET6;
	fib.l4_protocol = IPPROTO_ICMPV6;
	if (from_backend)
		__builtin_memcpy(fib.ipv6_src, nat.addr, 16);
	else
		__builtin_memcpy(fib.ipv6_src, ip6h->saddr.in6_u.u6_addr32, 16);
	__builtin_memcpy(fib.ipv6_dst, key.dst_addr, 16);
	fib.ifindex = skb->ifindex;
	verdict = tg_reply_route(skb, &fib, 1, ip6h->hop_limit, &rc);
	if (verdict >= 0)
		return verdict;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	ip6h = data + TG_ETH_LEN;
	icmp = (void *)(ip6h + 1);
	inner = (void *)(icmp + 1);
	ports = (void *)(inner + 1);
	if ((void *)ports + TG_ICMP_QUOTED_L4 > data_end)
		return TC_ACT_OK;

	/* The backend's address leaves the quoted destination and, when the
	 * backend sent the error, the outer source (a pseudo-header field of
	 * the ICMPv6 checksum). */
	addr_delta = tg_csum_addr6(0, key.src_addr, nat.addr);
	icmp_sum = tg_csum_begin(icmp->icmp6_cksum) + addr_delta;
	if (from_backend)
		icmp_sum += addr_delta;
	if (inner->nexthdr == IPPROTO_UDP) {
		tg_quoted_l4_csum(&ports[3], addr_delta, ports[1], nat.port, 1,
				  &icmp_sum);
	} else {
		__u16 *check = (void *)ports + 16;

		if ((void *)(check + 1) <= data_end &&
		    payload_length >= sizeof(*icmp) + sizeof(*inner) + 18)
			tg_quoted_l4_csum(check, addr_delta, ports[1], nat.port,
					  0, &icmp_sum);
	}
	icmp_sum = tg_csum_word(icmp_sum, ports[1], nat.port);
	ports[1] = nat.port;
	icmp->icmp6_cksum = tg_csum_end(icmp_sum);
	__builtin_memcpy(inner->daddr.in6_u.u6_addr32, nat.addr, 16);
	if (from_backend)
		__builtin_memcpy(ip6h->saddr.in6_u.u6_addr32, nat.addr, 16);
	return tg_reply_send(skb, &fib, rc);
}

/*
 * The service's address and port as a reply's source, written in place
 * once the L4 checksum has them (the IPv4 header's checksum by hand: it
 * is always whole). `from`: the backend's address. Nonzero when the
 * headers are not where they were.
 */
static __always_inline int tg_reply_set_source(struct __sk_buff *skb,
					       __u8 family, __u32 l4_offset,
					       const __u32 *from,
					       const struct tg_reverse_nat *nat)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__be16 *port;

	if (l4_offset > TG_REPLY_HEADERS)
		return -1;
	port = data + l4_offset;
	if ((void *)(port + 1) > data_end)
		return -1;
	if (family == TG_FAMILY_IPV4) {
		struct iphdr *iph = data + TG_ETH_LEN;

		if ((void *)(iph + 1) > data_end)
			return -1;
		iph->check = tg_csum_end(tg_csum_u32(tg_csum_begin(iph->check),
						     from[0], nat->addr[0]));
		iph->saddr = nat->addr[0];
	} else {
		struct ipv6hdr *ip6h = data + TG_ETH_LEN;

		if ((void *)(ip6h + 1) > data_end)
			return -1;
		__builtin_memcpy(ip6h->saddr.in6_u.u6_addr32, nat->addr, 16);
	}
	*port = nat->port;
	return 0;
}

static __always_inline int lb4_reply(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *iph = data + TG_ETH_LEN;
	struct tg_flow_key key = { .family = TG_FAMILY_IPV4 };
	struct bpf_fib_lookup fib = {};
	struct tg_fragment_key fragment = {};
	struct tg_reverse_nat nat = {};
	struct tg_flow *flow = NULL;
	struct tg_l4 l4 = {};
	__u32 l4_offset, check_offset, old_addr;
	__u64 csum_flags;
	__u8 protocol;
	int rc, verdict, kind, found;

	if ((void *)(iph + 1) > data_end || iph->ihl != 5)
		return TC_ACT_OK;
	kind = tg_ipv4_fragment_kind(iph);
	if (kind != TG_WHOLE)
		tg_fragment_key4(iph, &fragment);
	if (kind == TG_LATER_FRAGMENT)
		return tg_reply_fragment(skb, &fragment, iph->ttl);
	protocol = iph->protocol;
	if (protocol == IPPROTO_ICMP && kind == TG_WHOLE)
		return lb4_reply_icmp(skb);
	if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
		return TC_ACT_OK;
	if (tg_parse_l4(iph + 1, data_end, protocol,
			bpf_ntohs(iph->tot_len) - sizeof(*iph),
			kind == TG_WHOLE, &l4) != TG_PARSE_OK)
		return TC_ACT_OK;

	key.src_addr[0] = iph->saddr;
	key.dst_addr[0] = iph->daddr;
	key.src_port = l4.src_port;
	key.dst_port = l4.dst_port;
	key.protocol = protocol;
	found = tg_reply_flow(&key, &nat, &flow);
	if (found != TG_REPLY_FOUND)
		return tg_reply_unknown(skb, &key, found);
	tg_note_reply(&key, &nat, flow, l4.tcp_flags);

	/* At ingress, skb->ifindex is the arrival device. */
	tg_reply_fib(&fib, TG_FAMILY_IPV4, protocol, nat.addr, key.dst_addr,
		     skb->ifindex);
	verdict = tg_reply_route(skb, &fib, iph->frag_off & bpf_htons(TG_IP_DF),
				 iph->ttl, &rc);
	if (verdict >= 0)
		return verdict;
	if (kind == TG_FIRST_FRAGMENT)
		tg_remember_fragments(&fragment, nat.addr, 0, nat.backend_index,
				      0, bpf_ktime_get_coarse_ns());

	old_addr = key.src_addr[0];
	l4_offset = TG_ETH_LEN + sizeof(*iph);
	check_offset = tg_l4_check_offset(l4_offset, protocol);
	csum_flags = tg_l4_csum_flags(protocol);
	bpf_l4_csum_replace(skb, check_offset, old_addr, nat.addr[0],
			    BPF_F_PSEUDO_HDR | csum_flags | sizeof(old_addr));
	bpf_l4_csum_replace(skb, check_offset, l4.src_port, nat.port,
			    csum_flags | sizeof(nat.port));
	if (tg_reply_set_source(skb, TG_FAMILY_IPV4, l4_offset, key.src_addr,
				&nat))
		return TC_ACT_OK;
	return tg_reply_send(skb, &fib, rc);
}

static __always_inline int lb6_reply(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6h = data + TG_ETH_LEN;
	struct tg_flow_key key = { .family = TG_FAMILY_IPV6 };
	struct bpf_fib_lookup fib = {};
	struct tg_fragment_key fragment = {};
	struct tg_reverse_nat nat = {};
	struct tg_flow *flow = NULL;
	struct tg_l4 l4 = {};
	__u32 l4_offset, check_offset, l4_length;
	__u32 diff;
	__u64 csum_flags;
	__u8 protocol;
	int rc, verdict, kind = TG_WHOLE, found;
	void *l4_header;

	if ((void *)(ip6h + 1) > data_end)
		return TC_ACT_OK;
	protocol = ip6h->nexthdr;
	l4_header = ip6h + 1;
	l4_offset = TG_ETH_LEN + sizeof(*ip6h);
	l4_length = bpf_ntohs(ip6h->payload_len);
	if (protocol == IPPROTO_FRAGMENT) {
		struct tg_frag6_hdr *frag = l4_header;

		if ((void *)(frag + 1) > data_end || l4_length < sizeof(*frag))
			return TC_ACT_OK;
		kind = tg_ipv6_fragment_kind(frag);
		tg_fragment_key6(ip6h, frag, &fragment);
		if (kind == TG_LATER_FRAGMENT)
			return tg_reply_fragment(skb, &fragment,
						 ip6h->hop_limit);
		protocol = frag->nexthdr;
		l4_header = frag + 1;
		l4_offset += sizeof(*frag);
		l4_length -= sizeof(*frag);
	}
	if (protocol == IPPROTO_ICMPV6 && kind == TG_WHOLE)
		return lb6_reply_icmp(skb);
	if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
		return TC_ACT_OK;
	if (tg_parse_l4(l4_header, data_end, protocol, l4_length,
			kind == TG_WHOLE, &l4) != TG_PARSE_OK)
		return TC_ACT_OK;

	__builtin_memcpy(key.src_addr, ip6h->saddr.in6_u.u6_addr32, 16);
	__builtin_memcpy(key.dst_addr, ip6h->daddr.in6_u.u6_addr32, 16);
	key.src_port = l4.src_port;
	key.dst_port = l4.dst_port;
	key.protocol = protocol;
	found = tg_reply_flow(&key, &nat, &flow);
	if (found != TG_REPLY_FOUND)
		return tg_reply_unknown(skb, &key, found);
	tg_note_reply(&key, &nat, flow, l4.tcp_flags);

	tg_reply_fib(&fib, TG_FAMILY_IPV6, protocol, nat.addr, key.dst_addr,
		     skb->ifindex);
	verdict = tg_reply_route(skb, &fib, 1, ip6h->hop_limit, &rc);
	if (verdict >= 0)
		return verdict;
	if (kind == TG_FIRST_FRAGMENT)
		tg_remember_fragments(&fragment, nat.addr, 0, nat.backend_index,
				      0, bpf_ktime_get_coarse_ns());

	check_offset = tg_l4_check_offset(l4_offset, protocol);
	csum_flags = tg_l4_csum_flags(protocol);
	/* The address's share of the sum, as bpf_csum_diff() gives it. */
	diff = tg_csum_addr6(0, key.src_addr, nat.addr);
	bpf_l4_csum_replace(skb, check_offset, 0, diff,
			    BPF_F_PSEUDO_HDR | csum_flags);
	bpf_l4_csum_replace(skb, check_offset, l4.src_port, nat.port,
			    csum_flags | sizeof(nat.port));
	if (tg_reply_set_source(skb, TG_FAMILY_IPV6, l4_offset, key.src_addr,
				&nat))
		return TC_ACT_OK;
	return tg_reply_send(skb, &fib, rc);
}

SEC("tc")
int tg_tc_reply(struct __sk_buff *skb)
{
	void *data, *data_end;
	struct hdr_cursor cursor;
	__be16 ether_type = 0;
	__u8 vlan_depth = 0;
	__u64 want;

	/* Headers may sit in paged data; pull what a reply needs, only when
	 * some of it is not linear (a small packet is linear whole). */
	want = skb->len < TG_REPLY_HEADERS ? skb->len : TG_REPLY_HEADERS;
	if ((__u64)skb->data_end - (__u64)skb->data < want)
		bpf_skb_pull_data(skb, want);
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
