/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The maps of the data path. Layouts live in maps/tollgate_abi.h. */
#ifndef TG_LIB_MAPS_H
#define TG_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "tollgate_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tg_config);
} tg_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tg_service_key);
	__type(value, struct tg_service);
} tg_services SEC(".maps");

/* Value: unused (0); the data path tests an address's presence only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tg_vip_address);
	__type(value, __u32);
} tg_vip_addresses SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_VIP_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u32);
} tg_vip_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_MAX_BACKENDS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tg_backend_endpoint);
	__type(value, struct tg_endpoint_services);
} tg_backend_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct tg_backend);
} tg_backends SEC(".maps");

/*
 * One Maglev table per service: slot -> backend index. BPF_F_INNER_MAP lets
 * each service have its own (prime) size. The agent fills a standby table
 * and switches the outer entry with one write, so a packet never sees a
 * half-written table.
 */
struct tg_maglev_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_MAGLEV_DEFAULT_SIZE);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, TG_MAX_SERVICES);
	__type(key, __u32);
	__array(values, struct tg_maglev_table);
} tg_maglev SEC(".maps");

/* Round robin: the service's cursor into its sequence, shared by every
 * CPU (one atomic add per new flow), so that the sequence is dealt out in
 * order whichever CPU a flow arrives on. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u64);
} tg_service_cursors SEC(".maps");

/* Least connections: each backend slot's active connections, its flows
 * with TG_FLOW_COUNTED. Atomic adds from every CPU; mappable, so that the
 * agent adds its corrections atomically too (flows it sweeps, flows lost
 * without telling). Signed. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_MAX_BACKENDS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __s64);
} tg_backend_active SEC(".maps");

/* Least requests: each backend slot's new flows of the last two windows. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct tg_recent_flows);
} tg_backend_recent SEC(".maps");

/*
 * The connection table: every flow from its first packet, one entry for
 * both directions. Preallocated and without eviction (see
 * TG_OVERFLOW_FLOWS_DEFAULT): an insert takes a free element, cheaper than
 * an LRU's; the agent deletes what idled out (sweep_flows()).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_FLOWS_DEFAULT);
	__type(key, struct tg_flow_key);
	__type(value, struct tg_flow);
} tg_flows SEC(".maps");

/* Written by XDP for a flow of a service of every port, read by TC. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TG_FLOWS_DEFAULT);
	__type(key, struct tg_flow_key);
	__type(value, struct tg_reverse_nat);
} tg_reverse_flows SEC(".maps");

/* New flows that found tg_flows full, until it has room for them. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TG_OVERFLOW_FLOWS_DEFAULT);
	__type(key, struct tg_flow_key);
	__type(value, struct tg_flow);
} tg_overflow_flows SEC(".maps");

/* Datagrams in flight in fragments: what their first fragment got. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TG_FRAGMENTS);
	__type(key, struct tg_fragment_key);
	__type(value, struct tg_fragment);
} tg_fragments SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct tg_counters);
} tg_service_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct tg_counters);
} tg_backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct tg_backend_health);
} tg_backend_health SEC(".maps");

/*
 * Per backend index, shared by every CPU: coarse time of the last completed
 * handshake. A retransmitted SYN to a backend that completed none since the
 * flow's previous SYN is retried on another backend (L4 retry).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, __u64);
} tg_backend_last_handshake SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct tg_fib_entry);
} tg_fib_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_REPLY_HOPS);
	__type(key, __u32);
	__type(value, struct tg_reply_hop);
} tg_reply_hops SEC(".maps");

/* Sources that answered a SYN challenge (value: when, coarse ns). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TG_VERIFIED_SOURCES);
	__type(key, struct tg_source_key);
	__type(value, __u64);
} tg_verified_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_DROP_REASON_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} tg_drops SEC(".maps");

/* Per-CPU send budget of ICMP errors (TG_ICMP_PER_CPU_SECOND). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tg_event_budget);
} tg_icmp_budget SEC(".maps");

/* --- Policy ------------------------------------------------------------ */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct tg_service_policy);
} tg_service_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TG_ACL_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tg_acl_key);
	__type(value, __u32);
} tg_acl_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TG_ACL_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tg_acl_key);
	__type(value, __u32);
} tg_acl_deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TG_SOURCE_BUCKETS_DEFAULT);
	__type(key, struct tg_bucket_key);
	__type(value, struct tg_bucket);
} tg_source_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct tg_conn_bucket);
} tg_conn_buckets SEC(".maps");

/* --- Events ------------------------------------------------------------ */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, TG_EVENT_RING_BYTES);
} tg_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TG_EVENT_KEYS);
	__type(key, struct tg_event_key);
	__type(value, struct tg_event_aggregate);
} tg_event_aggregates SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_EVENT_KIND_COUNT);
	__type(key, __u32);
	__type(value, struct tg_event_stats);
} tg_event_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tg_event_budget);
} tg_event_budget SEC(".maps");

#endif /* TG_LIB_MAPS_H */
