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

#define TG_ABI_VERSION 2

/* Map sizes. TG_FLOWS_DEFAULT can be changed by the agent before load. */
#define TG_MAX_SERVICES 16384
#define TG_MAX_BACKENDS 65536
#define TG_FLOWS_DEFAULT 262144

/* Maglev table sizes: prime, default as in the Maglev paper. */
#define TG_MAGLEV_DEFAULT_SIZE 65537
#define TG_MAGLEV_MAX_SIZE 1048573

/*
 * A SYN seen again on a flow at least this long after the previous one is a
 * retransmission (the backend did not answer), not a duplicate. Linux waits
 * 1 s before its first SYN retransmission, other stacks as long or longer.
 */
#define TG_SYN_RETRANSMIT_MIN_NS 200000000ULL
/* How many other Maglev slots a retried SYN tries for another backend. */
#define TG_RETRY_PROBES 4

/* Backend index 0 is never used: a zeroed flow or table entry means "none". */
#define TG_BACKEND_NONE 0
/* service_id of a released backend slot: no service has it. */
#define TG_SERVICE_NONE 0xffffffff

enum tg_family {
	TG_FAMILY_IPV4 = 4,
	TG_FAMILY_IPV6 = 6,
};

enum tg_algorithm {
	TG_ALGORITHM_MAGLEV = 0,
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
 * Why a packet was dropped; index into tg_drops. Keep in sync with
 * tg_drop_reason_name() in userspace/abi.cpp (a unit test checks).
 */
enum tg_drop_reason {
	TG_DROP_ETH_TRUNCATED = 0, /* shorter than an Ethernet (+VLAN) header */
	TG_DROP_VLAN_TOO_DEEP, /* more than two VLAN tags */
	TG_DROP_IPV4_TRUNCATED, /* shorter than its IPv4 header */
	TG_DROP_IPV4_BAD_IHL, /* IHL < 5 or total length inconsistent */
	TG_DROP_IPV4_OPTIONS, /* IPv4 options, to a service address */
	TG_DROP_IPV4_FRAGMENT, /* IPv4 fragment, to a service address */
	TG_DROP_IPV6_TRUNCATED, /* shorter than an IPv6 header */
	TG_DROP_IPV6_EXT_HEADER, /* extension header, to a service address */
	TG_DROP_IPV6_FRAGMENT, /* fragment header, to a service address */
	TG_DROP_TCP_TRUNCATED, /* TCP header missing or bad data offset */
	TG_DROP_UDP_TRUNCATED, /* UDP header missing or bad length */
	TG_DROP_UDP6_ZERO_CHECKSUM, /* UDP over IPv6 without checksum */
	TG_DROP_NO_BACKEND, /* service has no selectable backend */
	TG_DROP_TTL_EXCEEDED, /* TTL / hop limit would reach zero */
	TG_DROP_FIB_FAILED, /* no route to the backend */
	TG_DROP_FRAME_TOO_BIG, /* larger than the egress MTU */
	TG_DROP_INTERNAL, /* a map or helper failed: should never move */
	TG_DROP_REASON_COUNT,
};

/* tg_config: one entry, runtime knobs the agent may change at any time. */
struct tg_config {
	__u32 abi_version; /* TG_ABI_VERSION of the agent that wrote it */
	__u32 flags; /* reserved, 0 */
	__u64 tcp_syn_timeout_ns; /* idle timeout of a flow that only sent SYN */
	__u64 tcp_established_timeout_ns; /* idle timeout of an established flow */
	__u64 tcp_closing_timeout_ns; /* idle timeout after FIN or RST */
	__u64 udp_timeout_ns; /* idle timeout of a UDP flow */
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
	__u32 maglev_size; /* entries in this service's Maglev table (prime) */
	__u8 algorithm; /* enum tg_algorithm */
	__u8 forward_mode; /* enum tg_forward_mode */
	__u16 flags; /* reserved, 0 */
	__u32 pad; /* 0 */
};

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

/* tg_backends value, indexed by backend index (1 .. TG_MAX_BACKENDS-1). */
struct tg_backend {
	__u32 addr[4]; /* backend address */
	__u16 port; /* backend port */
	__u8 family; /* enum tg_family */
	__u8 state; /* enum tg_backend_state */
	__u32 service_id; /* the service this slot belongs to */
	__u32 generation; /* bumped on every reuse of the slot */
	__u32 weight; /* relative weight, 1 .. 65535 */
};

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
	__u8 pad[3]; /* 0 */
};

/*
 * tg_reverse_flows: the reply direction of a NAT'd flow, keyed by a
 * struct tg_flow_key as the backend sends it (src = backend, dst = client);
 * the value is what the client addressed, restored on the reply.
 */
struct tg_reverse_nat {
	__u32 addr[4]; /* service address */
	__u16 port; /* service port the client used */
	__u8 family; /* enum tg_family */
	__u8 pad; /* 0 */
};

/* Per-CPU traffic counters, per service and per backend. */
struct tg_counters {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
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
};

#endif /* TOLLGATE_ABI_H */
