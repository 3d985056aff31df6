/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Backend selection for a new flow. O(1): no loop over backends. */
#ifndef TG_LIB_SELECT_H
#define TG_LIB_SELECT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "hash.h"
#include "maps.h"

/* Weighted Maglev: the agent-built table maps hash % size to a backend. */
static __always_inline __u32 tg_select_maglev(const struct tg_service *service,
					      __u32 hash)
{
	__u32 service_id = service->service_id;
	__u32 size = service->maglev_size;
	__u32 slot, *backend_index;
	void *table;

	if (size == 0)
		return TG_BACKEND_NONE;
	table = bpf_map_lookup_elem(&tg_maglev, &service_id);
	if (!table)
		return TG_BACKEND_NONE;
	slot = hash % size;
	backend_index = bpf_map_lookup_elem(table, &slot);
	return backend_index ? *backend_index : TG_BACKEND_NONE;
}

/* The backend at `index` if it may take a new flow of `service`. */
static __always_inline struct tg_backend *
tg_selectable_backend(const struct tg_service *service, __u32 index)
{
	struct tg_backend *backend;

	if (index == TG_BACKEND_NONE)
		return NULL;
	backend = bpf_map_lookup_elem(&tg_backends, &index);
	if (!backend || backend->state != TG_BACKEND_UP ||
	    backend->service_id != service->service_id)
		return NULL;
	return backend;
}

/*
 * What places a flow in its service's table for a retry, and for the
 * hashing schedulers its first choice: the client's masked address for
 * source-hash (all its flows move together), else the flow.
 */
static __always_inline __u32 tg_flow_place(const struct tg_service *service,
					   const struct tg_flow_key *key)
{
	if (service->algorithm == TG_ALGORITHM_SOURCE_HASH)
		return tg_hash_source(key, service->source_prefix);
	return tg_hash_flow(key);
}

/* The slot of the service's table a new flow takes, by its scheduler. */
static __always_inline __u32 tg_schedule(const struct tg_service *service,
					 const struct tg_flow_key *key)
{
	__u32 service_id = service->service_id;
	__u64 *cursor;

	switch (service->algorithm) {
	case TG_ALGORITHM_ROUND_ROBIN:
		cursor = bpf_map_lookup_elem(&tg_service_cursors, &service_id);
		if (cursor && service->maglev_size)
			return __sync_fetch_and_add(cursor, 1) %
			       service->maglev_size;
		return 0;
	case TG_ALGORITHM_RANDOM:
		return bpf_get_prandom_u32();
	default:
		return tg_flow_place(service, key);
	}
}

/*
 * The backend listed after `index` in the service's list (after its table),
 * found in two reads from a point drawn at random: the list is in endpoint
 * order, so with one read a backend is as often as not itself.
 */
static __always_inline __u32 tg_listed_after(const struct tg_service *service,
					     __u32 index)
{
	__u32 service_id = service->service_id;
	__u32 count = service->listed_backends, slot, *listed;
	void *table;

	if (count < 2)
		return TG_BACKEND_NONE;
	table = bpf_map_lookup_elem(&tg_maglev, &service_id);
	if (!table)
		return TG_BACKEND_NONE;
	slot = bpf_get_prandom_u32() % count;
	listed = bpf_map_lookup_elem(table,
				     &(__u32){ service->maglev_size + slot });
	if (listed && *listed != index)
		return *listed;
	slot = slot + 1 == count ? 0 : slot + 1;
	listed = bpf_map_lookup_elem(table,
				     &(__u32){ service->maglev_size + slot });
	return listed ? *listed : TG_BACKEND_NONE;
}

/* A backend's active connections, 0 if the count went below. */
static __always_inline __u64 tg_active_of(__u32 index)
{
	__s64 *active = bpf_map_lookup_elem(&tg_backend_active, &index);

	return active && *active > 0 ? (__u64)*active : 0;
}

/* Least requests: a new flow of the backend, at `now`. The CPU that first
 * sees a new window moves the count on (a flow counted meanwhile by
 * another CPU may land in either window: an estimate). */
static __always_inline void tg_recent_note(__u32 index, __u64 now)
{
	struct tg_recent_flows *recent =
		bpf_map_lookup_elem(&tg_backend_recent, &index);
	__u64 window = now >> TG_RECENT_WINDOW_SHIFT, seen, last;

	if (!recent)
		return;
	seen = recent->window;
	if (seen != window && __sync_val_compare_and_swap(&recent->window, seen,
							  window) == seen) {
		last = __sync_lock_test_and_set(&recent->current, 0);
		recent->previous = seen + 1 == window ? last : 0;
	}
	__sync_fetch_and_add(&recent->current, 1);
}

/* A flow placed on the backend, new or moved by L4 retry: least requests
 * counts it where it went. */
static __always_inline void tg_note_placed(const struct tg_service *service,
					   __u32 index, __u64 now)
{
	if (service->algorithm == TG_ALGORITHM_LEAST_REQUESTS)
		tg_recent_note(index, now);
}

/* New flows of the backend in the last window's length: the current
 * window's and the share of the one before that the length still covers. */
static __always_inline __u64 tg_recent_of(__u32 index, __u64 now)
{
	struct tg_recent_flows *recent =
		bpf_map_lookup_elem(&tg_backend_recent, &index);
	__u64 window = now >> TG_RECENT_WINDOW_SHIFT;
	__u64 left = (1ULL << TG_RECENT_WINDOW_SHIFT) -
		     (now & ((1ULL << TG_RECENT_WINDOW_SHIFT) - 1));

	if (!recent)
		return 0;
	if (recent->window == window)
		return recent->current +
		       ((recent->previous * left) >> TG_RECENT_WINDOW_SHIFT);
	if (recent->window + 1 == window)
		return (recent->current * left) >> TG_RECENT_WINDOW_SHIFT;
	return 0;
}

/* What least connections and least requests compare. */
static __always_inline __u64 tg_load_of(const struct tg_service *service,
					__u32 index, __u64 now)
{
	if (service->algorithm == TG_ALGORITHM_LEAST_REQUESTS)
		return tg_recent_of(index, now);
	return tg_active_of(index);
}

/*
 * Least connections and least requests by the power of two choices: two
 * backends drawn from the weighted sequence (so a heavier one is drawn
 * more often), and of them the one with less load per weight (active
 * connections; new flows in the last second). A burst of new flows, all
 * seeing the same counts, still spreads: only the worse of each pair
 * loses.
 */
static __always_inline __u32
tg_select_two_choices(const struct tg_service *service, __u64 now)
{
	__u32 first = tg_select_maglev(service, bpf_get_prandom_u32());
	__u32 second = tg_select_maglev(service, bpf_get_prandom_u32());
	struct tg_backend *a, *b;

	/* Drawn twice: the next one of the service's list instead, or a busy
	 * backend would win every pair it makes with itself. */
	if (first == second)
		second = tg_listed_after(service, first);
	if (second == TG_BACKEND_NONE || second == first)
		return first;
	a = tg_selectable_backend(service, first);
	b = tg_selectable_backend(service, second);
	if (!a || !b)
		return a ? first : second;
	/* load / weight, cross-multiplied: weights are below 2^16 */
	if (tg_load_of(service, second, now) * a->weight <
	    tg_load_of(service, first, now) * b->weight)
		return second;
	return first;
}

/* Whether the service's scheduler weighs the backends' load. */
static __always_inline int tg_weighs_load(const struct tg_service *service)
{
	return service->algorithm == TG_ALGORITHM_LEAST_CONNECTIONS ||
	       service->algorithm == TG_ALGORITHM_LEAST_REQUESTS;
}

/* Pick a backend for a new flow; NULL when the service has none selectable. */
static __always_inline struct tg_backend *
tg_select_backend(const struct tg_service *service,
		  const struct tg_flow_key *key, __u64 now,
		  __u32 *backend_index)
{
	__u32 index =
		tg_weighs_load(service)
			? tg_select_two_choices(service, now)
			: tg_select_maglev(service, tg_schedule(service, key));
	struct tg_backend *backend = tg_selectable_backend(service, index);

	if (backend)
		*backend_index = index;
	return backend;
}

/*
 * A selectable backend other than `avoid` from the service's list of
 * backends (after its Maglev table), walked from entry `start`: found
 * whenever the list holds one within TG_RETRY_LIST_WALK entries.
 */
static __always_inline struct tg_backend *
tg_select_listed_backend(const struct tg_service *service, __u32 start,
			 __u32 avoid, __u32 *backend_index)
{
	__u32 service_id = service->service_id;
	__u32 count = service->listed_backends;
	void *table;

	if (count == 0)
		return NULL;
	table = bpf_map_lookup_elem(&tg_maglev, &service_id);
	if (!table)
		return NULL;
	start %= count;
	for (__u32 i = 0; i < TG_RETRY_LIST_WALK && i < count; i++) {
		__u32 slot = service->maglev_size + start, *index;
		struct tg_backend *backend;

		if (++start == count)
			start = 0;
		index = bpf_map_lookup_elem(table, &slot);
		if (!index || *index == avoid)
			continue;
		backend = tg_selectable_backend(service, *index);
		if (backend) {
			*backend_index = *index;
			return backend;
		}
	}
	return NULL;
}

/*
 * A backend other than `avoid` for a flow being retried: further slots of
 * the same table, picked by rehashing, so the choice keeps the weights and
 * is the same for every retransmission of the flow (for source-hash, for
 * every flow of the client). When those few slots
 * all name `avoid` (a backend with most of the weight, or bad luck: with
 * three backends one flow in 81), the service's list of backends. NULL
 * only when no other backend is selectable.
 */
static __always_inline struct tg_backend *
tg_select_other_backend(const struct tg_service *service,
			const struct tg_flow_key *key, __u32 avoid,
			__u32 *backend_index)
{
	__u32 hash = tg_flow_place(service, key);

#pragma unroll
	for (int i = 1; i <= TG_RETRY_PROBES; i++) {
		__u32 index = tg_select_maglev(
			service, tg_hash_final(hash + i * 0x9e3779b9U, i));
		struct tg_backend *backend;

		if (index == avoid)
			continue;
		backend = tg_selectable_backend(service, index);
		if (backend) {
			*backend_index = index;
			return backend;
		}
	}
	return tg_select_listed_backend(service, hash, avoid, backend_index);
}

#endif /* TG_LIB_SELECT_H */
