/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Service lookup and the backend for a packet: tracked flow or new one. */
#ifndef TG_LIB_STEER_H
#define TG_LIB_STEER_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "conntrack.h"
#include "counters.h"
#include "events.h"
#include "fragment.h"
#include "maps.h"
#include "policy.h"
#include "select.h"
#include "synauth.h"

static __always_inline int tg_is_vip_address(const __u32 *addr, __u8 family)
{
	struct tg_vip_address vip = { .family = family };

	__builtin_memcpy(vip.addr, addr, sizeof(vip.addr));
	return bpf_map_lookup_elem(&tg_vip_addresses, &vip) != NULL;
}

/* Whether `addr` may be a service address (tg_vip_filter): no means no. */
static __always_inline int tg_may_be_vip(const __u32 *addr)
{
	__u32 bit = tg_vip_filter_bit(addr);
	__u32 word = bit / 32;
	__u32 *bits = bpf_map_lookup_elem(&tg_vip_filter, &word);

	return bits && (*bits & (1U << (bit % 32)));
}

/*
 * A packet that passed tg_may_be_vip() but is dropped for `reason` before
 * its service is known: dropped only when aimed at a service address;
 * someone else's passes.
 */
static __always_inline int tg_drop_if_vip(const __u32 *addr, __u8 family,
					  int reason)
{
	return tg_is_vip_address(addr, family) ? tg_drop(reason) : XDP_PASS;
}

/* Exact (address, port, protocol) first, then the port wildcard. */
static __always_inline struct tg_service *
tg_lookup_service(const struct tg_flow_key *flow)
{
	struct tg_service_key key = {
		.port = flow->dst_port,
		.protocol = flow->protocol,
		.family = flow->family,
	};
	struct tg_service *service;

	__builtin_memcpy(key.addr, flow->dst_addr, sizeof(key.addr));
	service = bpf_map_lookup_elem(&tg_services, &key);
	if (service)
		return service;
	key.port = 0;
	return bpf_map_lookup_elem(&tg_services, &key);
}

/* The reply direction of `key` steered to `backend` (tg_reverse_flows key). */
static __always_inline void tg_reply_key(const struct tg_flow_key *key,
					 const struct tg_backend *backend,
					 struct tg_flow_key *reply)
{
	__builtin_memset(reply, 0, sizeof(*reply));
	reply->src_port = backend->port;
	reply->dst_port = key->src_port;
	reply->protocol = key->protocol;
	reply->family = key->family;
	__builtin_memcpy(reply->src_addr, backend->addr,
			 sizeof(reply->src_addr));
	__builtin_memcpy(reply->dst_addr, key->src_addr,
			 sizeof(reply->dst_addr));
}

/*
 * The reply path finds a flow from the backend that answers
 * (tg_backend_endpoints names its services) and the flow's own entry.
 * Only a service whose flag says so keeps a reverse entry per flow: one of
 * every port, or one its backend's endpoint does not list.
 */
static __always_inline void tg_remember_reply(const struct tg_service *service,
					      const struct tg_flow_key *key,
					      const struct tg_backend *backend,
					      __u32 backend_index)
{
	struct tg_flow_key reply;
	struct tg_reverse_nat nat = {
		.port = key->dst_port,
		.family = key->family,
		.backend_index = backend_index,
	};

	if (!(service->flags & TG_SERVICE_REVERSE_ENTRIES))
		return;
	tg_reply_key(key, backend, &reply);
	__builtin_memcpy(nat.addr, key->dst_addr, sizeof(nat.addr));
	bpf_map_update_elem(&tg_reverse_flows, &reply, &nat, BPF_ANY);
}

/*
 * A flow leaves `backend` before its handshake: a late answer from it must
 * not reach the client as if from the service (the client would take the
 * first backend's SYN-ACK and send its ACK to the second). The reply path
 * finds the flow no more with that backend, and drops the answer.
 */
static __always_inline void tg_forget_reply(const struct tg_service *service,
					    const struct tg_flow_key *key,
					    const struct tg_backend *backend)
{
	struct tg_flow_key reply;

	if (!(service->flags & TG_SERVICE_REVERSE_ENTRIES))
		return;
	tg_reply_key(key, backend, &reply);
	bpf_map_delete_elem(&tg_reverse_flows, &reply);
}

/* Whether `backend_index` completed a handshake after `since`. */
static __always_inline int tg_backend_answered_since(__u32 backend_index,
						     __u64 since)
{
	__u64 *last =
		bpf_map_lookup_elem(&tg_backend_last_handshake, &backend_index);

	return last && (__s64)(*last - since) > 0;
}

static __always_inline void tg_note_handshake(__u32 backend_index, __u64 now)
{
	__u64 *last =
		bpf_map_lookup_elem(&tg_backend_last_handshake, &backend_index);

	tg_count_health(backend_index, TG_HEALTH_HANDSHAKE);
	/* Shared by every CPU: write only when the coarse clock moved. */
	if (last && *last != now)
		*last = now;
}

/* A SYN (without ACK) seen again on a flow still waiting for its answer. */
static __always_inline int tg_is_syn_retransmit(const struct tg_flow *flow,
						__u8 tcp_flags, __u64 now)
{
	return (tcp_flags & (TG_TCP_SYN | TG_TCP_ACK)) == TG_TCP_SYN &&
	       flow->state == TG_FLOW_TCP_SYN &&
	       now - flow->last_seen_ns >= TG_SYN_RETRANSMIT_MIN_NS;
}

/*
 * A SYN (without ACK) keeps its tracked flow's backend only as a
 * retransmission of that flow's own SYN to a backend that is up. On a flow
 * past its handshake (established, or closing after a FIN or RST) it opens
 * a new connection on a reused tuple, a client port come round; towards a
 * draining backend it would open a new connection there. Either way it is
 * selected afresh, draining and down backends excluded, and the flow's
 * entry is rewritten for it.
 */
static __always_inline int tg_syn_selects_anew(const struct tg_flow *flow,
					       const struct tg_backend *backend,
					       __u8 tcp_flags)
{
	if ((tcp_flags & (TG_TCP_SYN | TG_TCP_ACK)) != TG_TCP_SYN)
		return 0;
	return flow->state != TG_FLOW_TCP_SYN ||
	       backend->state != TG_BACKEND_UP;
}

/*
 * L4 retry: the flow's SYN came again and its backend completed no
 * handshake since the previous one, so it is likely gone. Move the flow to
 * another backend; the client's own retransmission then connects. NULL
 * when there is no other backend: the SYN stays with the one it has.
 */
static __always_inline struct tg_backend *
tg_retry_flow(const struct tg_service *service, const struct tg_flow_key *key,
	      struct tg_flow *flow, const struct tg_backend *failed, __u64 now)
{
	__u32 failed_index = flow->backend_index, index = 0;
	struct tg_backend *backend;

	if (tg_backend_answered_since(failed_index, flow->last_seen_ns))
		return NULL;
	backend = tg_select_other_backend(service, key, failed_index, &index);
	if (!backend)
		return NULL;
	tg_count_health(failed_index, TG_HEALTH_RETRIED);
	if (flow->flags & TG_FLOW_COUNTED) {
		tg_active_add(failed_index, -1);
		tg_active_add(index, 1);
	}
	tg_note_placed(service, index, now);
	flow->backend_index = index;
	flow->backend_generation = backend->generation;
	flow->last_seen_ns = now;
	tg_forget_reply(service, key, failed);
	tg_remember_reply(service, key, backend, index);
	return backend;
}

/*
 * Where tg_steer() sent a packet: the backend's index, whether the packet
 * opened a flow there, the coarse time. The packet's traffic is counted by
 * tg_count_sent() once it has left, not when it was steered.
 */
struct tg_choice {
	__u64 now;
	__u32 service_id;
	__u32 backend_index;
	__u32 new_flow;
};

static __always_inline void tg_count_sent(const struct tg_choice *choice,
					  __u64 bytes)
{
	tg_count_traffic(&tg_service_stats, choice->service_id, bytes,
			 choice->new_flow);
	tg_count_traffic(&tg_backend_stats, choice->backend_index, bytes,
			 choice->new_flow);
}

/* A packet of a tracked flow whose backend still holds. */
static __always_inline struct tg_backend *
tg_steer_tracked(const struct tg_config *config,
		 const struct tg_service *service,
		 const struct tg_flow_key *key, struct tg_flow *flow,
		 struct tg_backend *backend, int in_overflow, __u8 tcp_flags,
		 __u64 now, struct tg_choice *chosen)
{
	__u32 service_id = service->service_id;
	__u32 backend_index = flow->backend_index;
	struct tg_backend *retried;
	__u8 state_before;
	int new_tick;

	if (tg_is_syn_retransmit(flow, tcp_flags, now)) {
		tg_count_health(backend_index, TG_HEALTH_SYN_RETRANSMIT);
		retried = tg_retry_flow(service, key, flow, backend, now);
		if (retried) {
			tg_event(config, now, TG_EVENT_FLOW_MOVED, service_id,
				 backend_index, key->family, key->src_addr);
			chosen->backend_index = flow->backend_index;
			chosen->new_flow = 1;
			return retried;
		}
	}
	state_before = flow->state;
	new_tick = flow->last_seen_ns != now;
	tg_flow_touch(flow, key->protocol, tcp_flags, now);
	if (flow->state == TG_FLOW_TCP_CLOSING)
		tg_flow_uncount(flow);
	if (state_before == TG_FLOW_TCP_SYN &&
	    flow->state == TG_FLOW_TCP_ESTABLISHED)
		tg_note_handshake(backend_index, now);
	/* While the table is full every try fails: one a clock tick. */
	if (in_overflow && new_tick)
		tg_settle_flow(key, flow);
	chosen->backend_index = backend_index;
	return backend;
}

/*
 * A backend for a flow that has none that holds. `known` is the flow's
 * record when it has one (its backend went, it idled out, or a SYN reopens
 * it): rewritten where it is. A flow never seen gets its entry
 * (tg_insert_flow()). Only a new connection (a SYN, a first datagram; on a
 * known flow only a SYN that `reopens` it) counts against the service's
 * cap: a TCP flow whose record was lost mid-stream is not a new one.
 */
static __always_inline struct tg_backend *
tg_steer_new(const struct tg_config *config,
	     const struct tg_service_policy *policy,
	     const struct tg_service *service, const struct tg_flow_key *key,
	     struct tg_flow *known, int reopens, __u8 tcp_flags, __u64 now,
	     int *drop_reason, struct tg_choice *chosen)
{
	__u32 service_id = service->service_id;
	struct tg_backend *backend;
	__u32 backend_index = 0;
	int is_connection =
		key->protocol != IPPROTO_TCP ||
		(tcp_flags & (TG_TCP_SYN | TG_TCP_ACK)) == TG_TCP_SYN;

	if ((!known || reopens) && is_connection &&
	    !tg_new_connection_conforms(policy, service_id)) {
		tg_event(config, now, TG_EVENT_CONN_LIMITED, service_id, 0,
			 key->family, key->src_addr);
		*drop_reason = TG_DROP_CONN_LIMITED;
		return NULL;
	}
	backend = tg_select_backend(service, key, now, &backend_index);
	if (!backend) {
		*drop_reason = TG_DROP_NO_BACKEND;
		return NULL;
	}
	struct tg_flow new_flow = {
		.last_seen_ns = now,
		.backend_index = backend_index,
		.backend_generation = backend->generation,
		.service_id = service_id,
		.state = tg_flow_next_state(key->protocol, 0, tcp_flags, 1),
	};
	/* Least connections counts what it places, a closing flow not. */
	if (service->algorithm == TG_ALGORITHM_LEAST_CONNECTIONS &&
	    new_flow.state != TG_FLOW_TCP_CLOSING)
		new_flow.flags = TG_FLOW_COUNTED;
	if (known) {
		tg_flow_uncount(known);
		*known = new_flow;
	} else {
		tg_insert_flow(key, &new_flow);
	}
	if (new_flow.flags & TG_FLOW_COUNTED)
		tg_active_add(backend_index, 1);
	tg_note_placed(service, backend_index, now);
	tg_remember_reply(service, key, backend, backend_index);
	chosen->backend_index = backend_index;
	chosen->new_flow = 1;
	return backend;
}

/*
 * The backend this packet goes to: policy, connection tracking, selection
 * and health counters; where it went in *chosen. Returns
 * NULL with *drop_reason set when it cannot go anywhere.
 */
static __always_inline struct tg_backend *
tg_steer(const struct tg_service *service, const struct tg_flow_key *key,
	 __u8 tcp_flags, __u64 bytes, int *drop_reason,
	 struct tg_choice *chosen)
{
	__u32 service_id = service->service_id;
	struct tg_service_policy *policy;
	struct tg_backend *backend;
	struct tg_config *config;
	struct tg_flow *flow;
	int in_overflow = 0, reopens = 0, reason;
	__u32 zero = 0;
	__u64 now;

	config = bpf_map_lookup_elem(&tg_config, &zero);
	policy = bpf_map_lookup_elem(&tg_service_policy, &service_id);
	if (!config || !policy) {
		*drop_reason = TG_DROP_INTERNAL;
		return NULL;
	}
	now = bpf_ktime_get_coarse_ns();
	chosen->now = now;
	chosen->service_id = service_id;
	chosen->new_flow = 0;
	reason = tg_admit(config, policy, service_id, key, bytes, now);
	if (reason) {
		*drop_reason = reason;
		return NULL;
	}

	flow = tg_lookup_flow(key, &in_overflow);
	if (flow) {
		backend = tg_flow_backend(flow, service_id, config, now);
		reopens = backend &&
			  tg_syn_selects_anew(flow, backend, tcp_flags);
		if (backend && !reopens)
			return tg_steer_tracked(config, service, key, flow,
						backend, in_overflow, tcp_flags,
						now, chosen);
		if (!reopens && !tg_flow_expired(flow, config, now) &&
		    flow->service_id == service_id)
			tg_event(config, now, TG_EVENT_FLOW_MOVED, service_id,
				 flow->backend_index, key->family,
				 key->src_addr);
	} else if (key->protocol == IPPROTO_TCP &&
		   key->family == TG_FAMILY_IPV4 &&
		   (policy->flags & TG_POLICY_SYN_AUTH) &&
		   !tg_source_proven(key)) {
		/* The caller challenges or drops it (lb4_syn_auth). */
		*drop_reason = TG_DROP_SYN_CHALLENGED;
		return NULL;
	} else if (key->protocol == IPPROTO_TCP &&
		   !(tcp_flags & (TG_TCP_SYN | TG_TCP_RST))) {
		tg_event(config, now, TG_EVENT_FLOW_UNTRACKED, service_id, 0,
			 key->family, key->src_addr);
	}
	return tg_steer_new(config, policy, service, key, flow, reopens,
			    tcp_flags, now, drop_reason, chosen);
}

/*
 * The backend of a later fragment: its first fragment's, while that backend
 * holds (as for a flow). Admitted as any packet: allow and deny lists, the
 * source's bucket. NULL with *drop_reason 0 for a datagram that is no
 * service's (it passes); else with the reason it is dropped.
 */
static __always_inline struct tg_backend *
tg_steer_fragment(const struct tg_fragment_key *key, __u64 bytes,
		  int *drop_reason, struct tg_choice *chosen)
{
	struct tg_flow_key flow_key = {
		.protocol = key->protocol,
		.family = key->family,
	};
	struct tg_service_policy *policy;
	struct tg_fragment *fragment;
	struct tg_backend *backend;
	struct tg_config *config;
	__u32 zero = 0, service_id, backend_index;
	__u64 now = bpf_ktime_get_coarse_ns();
	struct tg_flow holder = {};

	fragment = tg_fragment_lookup(key, now);
	if (!fragment) {
		*drop_reason = key->family == TG_FAMILY_IPV4
				       ? TG_DROP_IPV4_FRAGMENT
				       : TG_DROP_IPV6_FRAGMENT;
		return NULL;
	}
	*drop_reason = 0;
	if (fragment->backend_index == TG_FRAGMENT_PASS)
		return NULL;
	service_id = fragment->service_id;
	backend_index = fragment->backend_index;
	holder.service_id = service_id;
	holder.backend_generation = fragment->backend_generation;
	backend = bpf_map_lookup_elem(&tg_backends, &backend_index);
	if (!tg_flow_holds_backend(&holder, service_id, backend)) {
		*drop_reason = TG_DROP_NO_BACKEND;
		return NULL;
	}
	config = bpf_map_lookup_elem(&tg_config, &zero);
	policy = bpf_map_lookup_elem(&tg_service_policy, &service_id);
	if (!config || !policy) {
		*drop_reason = TG_DROP_INTERNAL;
		return NULL;
	}
	__builtin_memcpy(flow_key.src_addr, key->src_addr,
			 sizeof(flow_key.src_addr));
	__builtin_memcpy(flow_key.dst_addr, key->dst_addr,
			 sizeof(flow_key.dst_addr));
	*drop_reason =
		tg_admit(config, policy, service_id, &flow_key, bytes, now);
	if (*drop_reason)
		return NULL;
	chosen->now = now;
	chosen->service_id = service_id;
	chosen->backend_index = backend_index;
	chosen->new_flow = 0;
	return backend;
}

#endif /* TG_LIB_STEER_H */
