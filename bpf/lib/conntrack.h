/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking: client flow -> backend. A tracked flow keeps its
 * backend while that backend slot still holds the same backend (generation),
 * belongs to the flow's service and is up or draining; otherwise, or after
 * the idle timeout of its state, the flow is selected anew. Those two rules
 * live in maps/tollgate_flow.h, shared with the agent's flow counts. A SYN
 * on a tracked flow is a connection of its own unless it retransmits the
 * flow's SYN to a backend that is up (tg_syn_selects_anew in steer.h).
 */
#ifndef TG_LIB_CONNTRACK_H
#define TG_LIB_CONNTRACK_H

#include <linux/bpf.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"
#include "tollgate_flow.h"

/* TCP flags as they sit in byte 13 of the TCP header. */
#define TG_TCP_FIN 0x01
#define TG_TCP_SYN 0x02
#define TG_TCP_RST 0x04
#define TG_TCP_ACK 0x10

/* The state a flow enters when it sees a packet with `tcp_flags`. */
static __always_inline __u8 tg_flow_next_state(__u8 protocol, __u8 state,
					       __u8 tcp_flags, int is_new)
{
	if (protocol != IPPROTO_TCP)
		return TG_FLOW_UDP;
	if (tcp_flags & (TG_TCP_FIN | TG_TCP_RST))
		return TG_FLOW_TCP_CLOSING;
	if ((tcp_flags & (TG_TCP_SYN | TG_TCP_ACK)) == TG_TCP_SYN)
		return TG_FLOW_TCP_SYN; /* also a new connection on a reused tuple */
	if (is_new || state == TG_FLOW_TCP_SYN)
		return TG_FLOW_TCP_ESTABLISHED;
	return state;
}

/* A flow's entry: in the connection table, else in the overflow (then
 * *in_overflow is set). */
static __always_inline struct tg_flow *
tg_lookup_flow(const struct tg_flow_key *key, int *in_overflow)
{
	struct tg_flow *flow = bpf_map_lookup_elem(&tg_flows, key);

	*in_overflow = 0;
	if (flow)
		return flow;
	flow = bpf_map_lookup_elem(&tg_overflow_flows, key);
	*in_overflow = flow != NULL;
	return flow;
}

/*
 * Record a new flow. Its entry is written once and serves both directions;
 * when the connection table is full it goes to the overflow, which evicts
 * its least recently used. If that fails too, the next packet selects
 * again, consistently through Maglev.
 */
#define TG_EEXIST 17

static __always_inline void tg_insert_flow(const struct tg_flow_key *key,
					   const struct tg_flow *flow)
{
	/* Full: -E2BIG on 6.18; 6.1 answers otherwise. Only "already there"
	 * (another CPU's packet of the flow) keeps it out of the overflow. */
	long err = bpf_map_update_elem(&tg_flows, key, flow, BPF_NOEXIST);

	if (err && err != -TG_EEXIST)
		bpf_map_update_elem(&tg_overflow_flows, key, flow, BPF_ANY);
}

/* A flow of the overflow moves to the connection table once it has room.
 * `flow` is gone after it. */
static __always_inline void tg_settle_flow(const struct tg_flow_key *key,
					   struct tg_flow *flow)
{
	struct tg_flow copy = *flow;

	if (bpf_map_update_elem(&tg_flows, key, &copy, BPF_NOEXIST) == 0)
		bpf_map_delete_elem(&tg_overflow_flows, key);
}

/* Least connections: one more (or fewer) active connection on a backend. */
static __always_inline void tg_active_add(__u32 backend_index, __s64 delta)
{
	__s64 *active = bpf_map_lookup_elem(&tg_backend_active, &backend_index);

	if (active)
		__sync_fetch_and_add(active, delta);
}

/*
 * The flow gives its active connection back (it closes, or is selected
 * anew): exactly once, whichever CPU or direction sees it first, by an
 * atomic AND on the word that holds state and flags. Not to a backend slot
 * reused since (its count restarted at 0).
 */
static __always_inline void tg_flow_uncount(struct tg_flow *flow)
{
	const union {
		__u8 bytes[4];
		__u32 word;
	} counted = { .bytes = { 0, TG_FLOW_COUNTED, 0, 0 } };
	__u32 index = flow->backend_index, *word = (__u32 *)&flow->state;
	struct tg_backend *backend;

	if (!(flow->flags & TG_FLOW_COUNTED))
		return;
	if (!(__sync_fetch_and_and(word, ~counted.word) & counted.word))
		return;
	backend = bpf_map_lookup_elem(&tg_backends, &index);
	if (backend && backend->generation == flow->backend_generation)
		tg_active_add(index, -1);
}

/* The backend of a tracked flow, or NULL if the flow must be selected anew. */
static __always_inline struct tg_backend *
tg_flow_backend(const struct tg_flow *flow, __u32 service_id,
		const struct tg_config *config, __u64 now)
{
	struct tg_backend *backend;
	__u32 index = flow->backend_index;

	if (tg_flow_expired(flow, config, now))
		return NULL;
	backend = bpf_map_lookup_elem(&tg_backends, &index);
	if (!tg_flow_holds_backend(flow, service_id, backend))
		return NULL;
	return backend;
}

/* Record the packet on a flow that keeps its backend. */
static __always_inline void tg_flow_touch(struct tg_flow *flow, __u8 protocol,
					  __u8 tcp_flags, __u64 now)
{
	__u8 state = tg_flow_next_state(protocol, flow->state, tcp_flags, 0);

	/* Avoid dirtying the shared cache line when nothing changed. */
	if (flow->last_seen_ns != now)
		flow->last_seen_ns = now;
	if (flow->state != state)
		flow->state = state;
}

#endif /* TG_LIB_CONNTRACK_H */
