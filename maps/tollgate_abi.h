/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel/user ABI of tollgate: every map key and value, the drop
 * reasons and the limits. Included by the BPF programs and by the agent;
 * the agent static_asserts every size. Change a layout -> bump
 * TG_ABI_VERSION, so that an agent never adopts maps it cannot read.
 *
 * Conventions: fixed-width types, explicit padding, network byte order for
 * addresses and ports. An IPv4 address lives in addr[0] with addr[1..3]
 * zero, so one key type serves both families.
 */
#ifndef TOLLGATE_ABI_H
#define TOLLGATE_ABI_H

#include <linux/types.h>

#define TG_ABI_VERSION 12

/* Map sizes. The flow tables' can be changed by the agent before load. */
#define TG_MAX_SERVICES 16384
#define TG_MAX_BACKENDS 65536
#define TG_FLOWS_DEFAULT 262144
/*
 * The connection table (tg_flows) evicts nothing: a flow keeps its entry
 * until the agent finds it idle past its timeout. New flows that find it
 * full go to the overflow table (tg_overflow_flows, LRU) and move to the
 * connection table once it has room: a flood of new flows from spoofed
 * sources can fill it and churn the overflow, but never takes a tracked
 * flow's entry.
 */
#define TG_OVERFLOW_FLOWS_DEFAULT 65536
/* Per-source token buckets (LRU: a flood of new sources evicts idle ones). */
#define TG_SOURCE_BUCKETS_DEFAULT 65536
/* CIDR entries per access-list trie (allow, deny), all scopes together. */
#define TG_ACL_MAX_ENTRIES 65536
/* Event aggregation: (kind, service, source) keys tracked at once. */
#define TG_EVENT_KEYS 16384
#define TG_EVENT_RING_BYTES (256 * 1024)
/* tg_acl_key.scope of the global lists (otherwise a service id). */
#define TG_SCOPE_GLOBAL 0xffffffff

/* Maglev table sizes: prime, default as in the Maglev paper. */
#define TG_MAGLEV_DEFAULT_SIZE 65537
#define TG_MAGLEV_MAX_SIZE 1048573

/*
 * A SYN seen again on a flow at least this long after the previous one is a
 * retransmission (the backend did not answer), not a duplicate. Linux waits
 * 1 s before its first SYN retransmission, other stacks as long or longer.
 */
#define TG_SYN_RETRANSMIT_MIN_NS 200000000ULL
/* How many other Maglev slots a retried SYN tries for another backend
 * (they keep the weights), and how many entries of the service's list of
 * backends it then walks (it finds one whenever the service has another). */
#define TG_RETRY_PROBES 4
#define TG_RETRY_LIST_WALK 16
/* How long a FIB answer for a backend is reused (route and neighbour
 * changes reach the data path within this). */
#define TG_FIB_CACHE_NS 1000000000ULL
/* ICMP errors (too big) each CPU may send per second, as a router limits
 * them (Linux: net.ipv4.icmp_msgs_per_sec). */
#define TG_ICMP_PER_CPU_SECOND 1000

/* Backend index 0 is never used: a zeroed flow or table entry means "none". */
#define TG_BACKEND_NONE 0
/* service_id of a released backend slot: no service has it. */
#define TG_SERVICE_NONE 0xffffffff

enum tg_family {
	TG_FAMILY_IPV4 = 4,
	TG_FAMILY_IPV6 = 6,
};

/*
 * tg_service.algorithm: how a new flow picks its backend from the
 * service's table (tg_maglev), every one in proportion to the weights.
 */
enum tg_algorithm {
	TG_ALGORITHM_MAGLEV = 0, /* Maglev table, by the flow's hash */
	TG_ALGORITHM_SOURCE_HASH = 1, /* Maglev table, by the masked source */
	TG_ALGORITHM_ROUND_ROBIN = 2, /* smooth weighted sequence, one cursor */
	TG_ALGORITHM_RANDOM = 3, /* smooth weighted sequence, at random */
	/* of two backends drawn from that sequence, the one with fewer
	 * active connections per weight (tg_backend_active) */
	TG_ALGORITHM_LEAST_CONNECTIONS = 4,
	/* the same, by new flows in the last second (tg_backend_recent) */
	TG_ALGORITHM_LEAST_REQUESTS = 5,
};

enum tg_forward_mode {
	TG_FORWARD_NAT = 0,
};

enum tg_backend_state {
	TG_BACKEND_UNUSED = 0, /* slot free: flows pointing here move */
	TG_BACKEND_UP = 1, /* selectable, keeps its flows */
	TG_BACKEND_DRAINING = 2, /* keeps its flows, gets no new ones */
	TG_BACKEND_DOWN = 3, /* its flows move on their next packet */
};

enum tg_flow_state {
	TG_FLOW_UDP = 0,
	TG_FLOW_TCP_SYN = 1, /* only a SYN seen so far */
	TG_FLOW_TCP_ESTABLISHED = 2,
	TG_FLOW_TCP_CLOSING = 3, /* FIN or RST seen */
};

/*
 * Why a packet was dropped; index into tg_drops. The one list of drop
 * reasons: X(REASON, name, description) makes enum tg_drop_reason
 * (TG_DROP_<REASON>, numbered from 0 in this order) and the agent's names
 * (drop_reason_name(), the "reason" label of tollgate_drops_total).
 * Append only: the numbers are ABI, the names what dashboards match.
 */
#define TG_DROP_REASONS(X)                                                     \
	X(ETH_TRUNCATED, eth_truncated,                                        \
	  "shorter than an Ethernet (+VLAN) header")                           \
	X(VLAN_TOO_DEEP, vlan_too_deep, "more than two VLAN tags")             \
	X(IPV4_TRUNCATED, ipv4_truncated, "shorter than its IPv4 header")      \
	X(IPV4_BAD_IHL, ipv4_bad_ihl, "IHL < 5 or total length inconsistent")  \
	X(IPV4_OPTIONS, ipv4_options, "IPv4 options, to a service address")    \
	X(IPV4_FRAGMENT, ipv4_fragment,                                        \
	  "IPv4 fragment, to a service address, whose first fragment was "     \
	  "not seen (or came too long ago)")                                   \
	X(IPV6_TRUNCATED, ipv6_truncated, "shorter than an IPv6 header")       \
	X(IPV6_EXT_HEADER, ipv6_ext_header,                                    \
	  "extension header, to a service address")                            \
	X(IPV6_FRAGMENT, ipv6_fragment,                                        \
	  "IPv6 fragment, to a service address, whose first fragment was "     \
	  "not seen (or came too long ago)")                                   \
	X(TCP_TRUNCATED, tcp_truncated,                                        \
	  "TCP header missing or bad data offset")                             \
	X(UDP_TRUNCATED, udp_truncated, "UDP header missing or bad length")    \
	X(UDP6_ZERO_CHECKSUM, udp6_zero_checksum,                              \
	  "UDP over IPv6 without checksum")                                    \
	X(NO_BACKEND, no_backend, "service has no selectable backend")         \
	X(TTL_EXCEEDED, ttl_exceeded, "TTL / hop limit would reach zero")      \
	X(FIB_FAILED, fib_failed, "no route to the backend")                   \
	X(FRAME_TOO_BIG, frame_too_big,                                        \
	  "larger than the egress MTU, not answered (ICMP budget spent)")      \
	X(INTERNAL, internal, "a map or helper failed: should never move")     \
	X(DENIED, denied, "source in a deny list (global or the service's)")   \
	X(NOT_ALLOWED, not_allowed,                                            \
	  "an allow list is set and the source is not in it")                  \
	X(RATE_LIMITED, rate_limited, "the source's token bucket is empty")    \
	X(CONN_LIMITED, connection_limited,                                    \
	  "the service's new-connection cap is reached")                       \
	X(SYN_CHALLENGED, syn_challenged,                                      \
	  "a SYN from an unproven source, answered by the gateway with a "     \
	  "challenge (SYN auth)")                                              \
	X(SYN_PROOF, syn_proof,                                                \
	  "the source's RST answering its challenge: proven")                  \
	X(SYN_UNPROVEN, syn_unproven,                                          \
	  "not a SYN, no flow, from an unproven source")                       \
	X(IPV6_BAD_VERSION, ipv6_bad_version,                                  \
	  "EtherType IPv6 but an IP version other than 6")                     \
	X(FRAME_TOO_BIG_ANSWERED, frame_too_big_answered,                      \
	  "larger than the egress MTU, answered with ICMP fragmentation "      \
	  "needed / packet too big")                                           \
	X(ICMP_TRUNCATED, icmp_truncated,                                      \
	  "ICMP error about a service flow, too short for what it quotes")     \
	X(ICMP_UNKNOWN_FLOW, icmp_unknown_flow,                                \
	  "ICMP error quoting a service flow that is not tracked")             \
	X(REPLY_NO_ROUTE, reply_no_route,                                      \
	  "a reply with no route to its client")                               \
	X(REPLY_TOO_BIG, reply_too_big,                                        \
	  "a reply (DF) larger than the client-side MTU: the kernel answers "  \
	  "the backend with ICMP too big")                                     \
	X(REPLY_NO_FLOW, reply_no_flow,                                        \
	  "from a backend's service port to a client, matching no tracked "    \
	  "flow (a late answer to a flow moved or expired): never forwarded "  \
	  "from the backend's own address")

#define TG_DROP_ENUMERATOR(reason, name, description) TG_DROP_##reason,
enum tg_drop_reason {
	TG_DROP_REASONS(TG_DROP_ENUMERATOR)
	/* Not a reason: how many there are (the entries of tg_drops). */
	TG_DROP_REASON_COUNT,
};
#undef TG_DROP_ENUMERATOR

/* tg_config: one entry, runtime knobs the agent may change at any time. */
/* tg_config.flags and tg_service_policy.flags: which policy is in force. */
enum tg_policy_flag {
	TG_POLICY_ALLOW_LIST = 1, /* an allow list is set for the scope */
	TG_POLICY_DENY_LIST = 2, /* a deny list is set for the scope */
	TG_POLICY_RATE_LIMIT = 4, /* per-source token buckets (services only) */
	TG_POLICY_CONN_LIMIT = 8, /* new-connection cap (services only) */
	TG_POLICY_SYN_AUTH = 16, /* SYN authentication (services only) */
};

struct tg_config {
	__u32 abi_version; /* TG_ABI_VERSION of the agent that wrote it */
	__u32 flags; /* enum tg_policy_flag of the global lists */
	__u64 tcp_syn_timeout_ns; /* idle timeout of a flow that only sent SYN */
	__u64 tcp_established_timeout_ns; /* idle timeout of an established flow */
	__u64 tcp_closing_timeout_ns; /* idle timeout after FIN or RST */
	__u64 udp_timeout_ns; /* idle timeout of a UDP flow */
	__u64 event_interval_ns; /* at most one event per key in this time */
	__u32 events_per_cpu; /* events per second each CPU may send */
	__u32 pad; /* 0 */
};

/* tg_services key: what a client addresses. */
struct tg_service_key {
	__u32 addr[4]; /* service address */
	__u16 port; /* service port; 0 = every port (wildcard) */
	__u8 protocol; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family; /* enum tg_family */
};

/* tg_services value. */
struct tg_service {
	__u32 service_id; /* index into tg_maglev and tg_service_stats */
	/* entries in this service's table (prime): the Maglev table, or for
	 * round robin and random the smooth weighted sequence */
	__u32 maglev_size;
	__u8 algorithm; /* enum tg_algorithm */
	__u8 forward_mode; /* enum tg_forward_mode */
	__u16 flags; /* TG_SERVICE_* */
	/* Its selectable backends, listed by their index in its tg_maglev
	 * array after the table (slots maglev_size ..), in endpoint order. */
	__u32 listed_backends;
	/* source-hash: the bits of the client's address hashed (32 / 128:
	 * all of them) */
	__u8 source_prefix;
	__u8 pad[3]; /* 0 */
};

/* tg_service.flags */
/*
 * Its flows keep reverse entries (tg_reverse_flows): a service of every
 * port (the backend's port does not tell which port the client addressed),
 * and a service left out of the list of a backend endpoint it has (more
 * than TG_ENDPOINT_SERVICES services share that endpoint).
 */
#define TG_SERVICE_REVERSE_ENTRIES 0x1

/*
 * tg_vip_addresses: every address some service listens on. Lets the data
 * path tell "malformed and aimed at us" (drop) from "someone else's" (pass)
 * when it cannot read the ports (fragments) or will not (IP options).
 */
struct tg_vip_address {
	__u32 addr[4];
	__u8 family; /* enum tg_family */
	__u8 pad[3]; /* 0 */
};

/* A hash of an address (words in network order): its top bits index
 * tg_vip_filter and tg_reply_hops. */
static inline __u32 tg_addr_hash(const __u32 *addr)
{
	return (addr[0] ^ addr[1] ^ addr[2] ^ addr[3]) * 0x9e3779b1U;
}

/*
 * tg_vip_filter: a bit for each address of tg_vip_addresses, by the top 16
 * bits of its hash (words of 32 bits, key = bit / 32). Every packet meets
 * it first: one with its bit clear is no service's and passes at the cost
 * of an array read; one with it set is looked up exactly.
 */
#define TG_VIP_FILTER_WORDS 2048

static inline __u32 tg_vip_filter_bit(const __u32 *addr)
{
	return tg_addr_hash(addr) >> 16;
}

/*
 * tg_backend_endpoints: every backend address, port and protocol some
 * service sends to. The value names the services that have it as a
 * backend: a reply from it belongs to a flow of one of them, found in
 * tg_flows by the flow's own key (client -> service). That is the reply
 * path's whole index: a flow is written once, for both directions.
 * A packet from an endpoint that matches no flow is not let through with
 * the backend's address.
 */
struct tg_backend_endpoint {
	__u32 addr[4];
	__u16 port; /* network order */
	__u8 family; /* enum tg_family */
	__u8 protocol; /* IPPROTO_TCP or IPPROTO_UDP */
};

/*
 * The services a backend endpoint's value lists, the first to have it; the
 * flows of any further ones keep reverse entries (TG_SERVICE_REVERSE_ENTRIES).
 */
#define TG_ENDPOINT_SERVICES 16

/* A service whose backends include an endpoint. */
struct tg_endpoint_service {
	__u32 addr[4]; /* service address */
	__u16 port; /* network order; 0: a service of every port */
	__u16 pad; /* 0 */
};

/* tg_backend_endpoints value. */
struct tg_endpoint_services {
	__u32 count; /* entries of `services` in use */
	__u32 pad; /* 0 */
	struct tg_endpoint_service services[TG_ENDPOINT_SERVICES];
};

/* tg_backends value, indexed by backend index (1 .. TG_MAX_BACKENDS-1). */
struct tg_backend {
	__u32 addr[4]; /* backend address */
	__u16 port; /* backend port */
	__u8 family; /* enum tg_family */
	__u8 state; /* enum tg_backend_state */
	__u32 service_id; /* the service this slot belongs to */
	__u32 generation; /* bumped on every reuse of the slot */
	__u32 weight; /* relative weight, 1 .. the agent's kMaxWeight */
};

/*
 * tg_fib_cache value (per CPU, by backend index): the FIB's answer for the
 * backend's address, reused by later packets to that backend for at most
 * TG_FIB_CACHE_NS. Valid only for the slot generation and the ingress
 * interface it was looked up with, and for packets up to its MTU.
 */
struct tg_fib_entry {
	__u64 expires_ns; /* coarse monotonic time it stops being used */
	__u32 generation; /* tg_backend.generation it was looked up for */
	__u32 ingress_ifindex; /* the interface the lookup was made from */
	__u32 ifindex; /* egress interface */
	__u16 mtu; /* the egress MTU the FIB reported */
	__u8 smac[6];
	__u8 dmac[6];
	__u8 pad[6]; /* 0 */
};

/* Slots of tg_reply_hops per CPU (a power of two). */
#define TG_REPLY_HOPS 4096

/*
 * tg_reply_hops value (per CPU, direct-mapped by tg_reply_hop_slot() of the
 * client address): the FIB's answer for a reply to that client, reused for
 * at most TG_FIB_CACHE_NS as the forward path's. Valid only for the client,
 * the interface the reply arrived on, and packets up to its MTU; two
 * clients on one slot take turns.
 */
struct tg_reply_hop {
	__u64 expires_ns; /* coarse monotonic time it stops being used */
	__u32 addr[4]; /* the client */
	__u32 ingress_ifindex; /* the interface the lookup was made from */
	__u32 ifindex; /* egress interface */
	__u16 mtu; /* the egress MTU the FIB reported */
	__u8 family; /* enum tg_family; 0: empty */
	__u8 pad; /* 0 */
	__u8 smac[6];
	__u8 dmac[6];
};

static inline __u32 tg_reply_hop_slot(const __u32 *addr)
{
	return tg_addr_hash(addr) >> 20; /* 12 bits: TG_REPLY_HOPS slots */
}

/*
 * SYN authentication: a TCP SYN to a service with TG_POLICY_SYN_AUTH from a
 * source not yet proven is answered by the gateway with a SYN-ACK whose
 * acknowledgment number is a cookie (and so wrong for the client). A real
 * client answers with an RST carrying the cookie as its sequence number:
 * its source is then proven (tg_verified_sources), and its SYN,
 * retransmitted a second later, goes to a backend. A spoofed source never
 * sees the challenge and never reaches a backend.
 */
struct tg_source_key {
	__u32 addr[4];
	__u8 family; /* enum tg_family */
	__u8 pad[3]; /* 0 */
};
#define TG_VERIFIED_SOURCES 65536
/* A cookie is valid in its time slot (2^36 ns, about 69 s) and the next. */
#define TG_SYN_COOKIE_SLOT_SHIFT 36

/* tg_flows key: a client's flow to a service, as the client sent it. */
struct tg_flow_key {
	__u32 src_addr[4]; /* client address */
	__u32 dst_addr[4]; /* service address */
	__u16 src_port; /* client port */
	__u16 dst_port; /* service port */
	__u8 protocol; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family; /* enum tg_family */
	__u8 pad[2]; /* 0 */
};

/* tg_flows value. */
struct tg_flow {
	__u64 last_seen_ns; /* coarse monotonic time of the last packet */
	__u32 backend_index; /* index into tg_backends */
	__u32 backend_generation; /* tg_backend.generation when chosen */
	__u32 service_id; /* tg_service.service_id when chosen */
	__u8 state; /* enum tg_flow_state */
	__u8 flags; /* TG_FLOW_*: in the same aligned word as state */
	__u8 pad[2]; /* 0 */
};

/* tg_flow.flags: the flow holds one of its backend's active connections
 * (tg_backend_active), given back once when it closes, is moved, is
 * selected anew or is swept. */
#define TG_FLOW_COUNTED 0x1

/*
 * tg_reverse_flows: the reply direction of a flow of a service of every
 * port, keyed by a struct tg_flow_key as the backend sends it (src =
 * backend, dst = client). The backend's port does not tell which port the
 * client addressed, so these flows, unlike all others, keep a reverse
 * entry; the value is what the client addressed, restored on the reply.
 */
struct tg_reverse_nat {
	__u32 addr[4]; /* service address */
	__u16 port; /* service port the client used */
	__u8 family; /* enum tg_family */
	__u8 pad; /* 0 */
	__u32 backend_index; /* the backend the flow went to */
};

/*
 * tg_fragments: the datagrams in flight in fragments. Only a datagram's
 * first fragment carries the ports; the translation it got is kept here,
 * keyed by what every fragment carries, and applied to the later ones.
 * Written by XDP for datagrams to a service (key: client -> service
 * address; value: the backend) and by TC for a backend's replies (key:
 * backend -> client; value: the service address).
 */
struct tg_fragment_key {
	__u32 src_addr[4];
	__u32 dst_addr[4];
	__u32 id; /* IPv4 identification (16 bits) or IPv6 fragment id */
	__u8 protocol; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family; /* enum tg_family */
	__u8 pad[2]; /* 0 */
};

/* tg_fragment.backend_index of a datagram that is no service's: it passes. */
#define TG_FRAGMENT_PASS 0xffffffffu

struct tg_fragment {
	__u64 first_seen_ns; /* coarse time of the first fragment */
	__u32 addr
		[4]; /* written into later fragments: backend or service address */
	__u32 service_id;
	__u32 backend_index; /* TG_FRAGMENT_PASS: not a service's datagram */
	__u32 backend_generation; /* tg_backend.generation when chosen */
	__u32 pad; /* 0 */
};
#define TG_FRAGMENTS 8192
/* Later fragments follow their first for as long as the kernel would wait
 * to reassemble them (net.ipv4.ipfrag_time). */
#define TG_FRAGMENT_TIMEOUT_NS (30ULL * 1000000000ULL)

/* Per-CPU traffic counters, per service and per backend. */
struct tg_counters {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
};

/*
 * tg_backend_recent value, per backend index: least requests' new flows by
 * window of 2^TG_RECENT_WINDOW_SHIFT ns (about a second) of the coarse
 * clock, the current one and the one before; shared by every CPU.
 */
#define TG_RECENT_WINDOW_SHIFT 30
struct tg_recent_flows {
	__u64 window; /* now >> TG_RECENT_WINDOW_SHIFT of `current` */
	__u64 current; /* new flows in that window */
	__u64 previous; /* in the window before it (0: not the one before) */
};

/*
 * Per-CPU, per backend index: how connection attempts to it went. The agent
 * reads the deltas for passive ejection (circuit breaking) and metrics.
 */
struct tg_backend_health {
	__u64 handshakes; /* a steered SYN was answered: the client's ACK came */
	__u64 syn_retransmits; /* a steered SYN came again: no answer */
	__u64 syn_resets; /* the backend answered a SYN with RST */
	__u64 retried; /* retransmitted SYNs steered away to another backend */
	__u64 udp_replies; /* UDP datagrams the backend sent back */
	__u64 udp_unreachable; /* ICMP port unreachable from the backend */
};

/*
 * tg_service_policy, indexed by service id. Rates are per second; a bucket
 * holds at most its burst. Zero flags: no policy, nothing else is read.
 */
struct tg_service_policy {
	__u32 flags; /* enum tg_policy_flag */
	__u8 ipv4_prefix; /* source bits that key a bucket, 1 .. 32 */
	__u8 ipv6_prefix; /* 1 .. 128 */
	__u16 pad; /* 0 */
	__u64 packet_rate; /* packets per second and source; 0: no limit */
	__u64 packet_burst;
	__u64 byte_rate; /* bytes per second and source; 0: no limit */
	__u64 byte_burst;
	__u64 conn_rate; /* new connections per second to the service */
	__u64 conn_burst;
};

/*
 * tg_acl_allow and tg_acl_deny (LPM tries) key: prefixlen counts the bits
 * of scope and family (64) plus the CIDR's prefix length.
 */
struct tg_acl_key {
	__u32 prefixlen;
	__u32 scope; /* TG_SCOPE_GLOBAL or a service id */
	__u32 family; /* enum tg_family */
	__u32 addr[4]; /* network byte order */
};

/* tg_source_buckets key: a service and a (masked) source address. */
struct tg_bucket_key {
	__u32 service_id;
	__u8 family;
	__u8 pad[3]; /* 0 */
	__u32 addr[4]; /* source, masked to the policy's prefix */
};

/*
 * A token bucket as a theoretical arrival time (GCRA): a packet conforms
 * when the time would stay within burst / rate ahead of now. Shared by
 * every CPU and moved by compare-and-swap: exact whatever CPU the packets
 * arrive on. (The kernel refuses a bpf_spin_lock in an LRU map's value.)
 */
struct tg_bucket {
	__u64 packet_tat_ns;
	__u64 byte_tat_ns;
};

/* tg_conn_buckets, indexed by service id: the new-connection cap. */
struct tg_conn_bucket {
	__u64 tat_ns;
};

/*
 * What the data path reports in tg_events; index into tg_event_stats. The
 * one list of event kinds, X(KIND, name, description), as for the drop
 * reasons: enum tg_event_kind (TG_EVENT_<KIND>) and event_kind_name().
 */
#define TG_EVENT_KINDS(X)                                                      \
	X(DENIED, denied, "detail: TG_DROP_DENIED or TG_DROP_NOT_ALLOWED")     \
	X(RATE_LIMITED, rate_limited, "the source's bucket was empty")         \
	X(CONN_LIMITED, connection_limited,                                    \
	  "the service's new-connection cap was hit")                          \
	X(FLOW_MOVED, flow_moved, "detail: the backend index a flow left")     \
	X(FLOW_UNTRACKED, flow_untracked,                                      \
	  "TCP past its SYN with no tracked flow: evicted under pressure, "    \
	  "or idle too long")

#define TG_EVENT_ENUMERATOR(kind, name, description) TG_EVENT_##kind,
enum tg_event_kind {
	TG_EVENT_KINDS(TG_EVENT_ENUMERATOR)
	/* Not a kind: how many there are (the entries of tg_event_stats). */
	TG_EVENT_KIND_COUNT,
};
#undef TG_EVENT_ENUMERATOR

/* tg_event_aggregates key: what an event is about. */
struct tg_event_key {
	__u8 kind; /* enum tg_event_kind */
	__u8 family; /* enum tg_family */
	__u16 pad; /* 0 */
	__u32 service_id;
	__u32 detail;
	__u32 addr[4]; /* source address */
};

/* Moved by atomic operations, from every CPU. */
struct tg_event_aggregate {
	__u64 pending; /* occurrences since the last report */
	__u64 last_report_ns; /* 0: never reported */
};

/* Per-CPU, per event kind: occurrences; those reported in some event. */
struct tg_event_stats {
	__u64 occurrences;
	__u64 reported;
};

/* Per-CPU send budget (tg_event_budget for events, tg_icmp_budget for ICMP
 * errors): what was sent in the current one-second window. */
struct tg_event_budget {
	__u64 window_start_ns;
	__u64 sent;
};

/* A record in the tg_events ring buffer. */
struct tg_event {
	__u64 time_ns; /* bpf_ktime_get_coarse_ns() at the report */
	__u8 kind; /* enum tg_event_kind */
	__u8 family; /* enum tg_family */
	__u16 pad;
	__u32 service_id;
	__u32 detail;
	__u32 count; /* occurrences this event stands for (>= 1) */
	__u32 addr[4]; /* source address */
};

#endif /* TOLLGATE_ABI_H */
