/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Events to the agent through the tg_events ring buffer, bounded whatever
 * the traffic: occurrences are aggregated per (kind, service, detail,
 * source) and reported at most once per config->event_interval_ns per key,
 * each CPU sends at most config->events_per_cpu per second, and a full ring
 * loses the event rather than waiting. Every occurrence is counted in
 * tg_event_stats, and every occurrence an event stood for as reported, so
 * what was not reported is their difference.
 */
#ifndef TG_LIB_EVENTS_H
#define TG_LIB_EVENTS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"

#define TG_NSEC_PER_SEC 1000000000ULL

/*
 * Whether this CPU may send one more of what `budget_map` (a one-entry
 * per-CPU array of struct tg_event_budget) limits to `per_second`; takes
 * it if so.
 */
static __always_inline int tg_budget_take(void *budget_map, __u64 per_second,
					  __u64 now)
{
	__u32 zero = 0;
	struct tg_event_budget *budget = bpf_map_lookup_elem(budget_map, &zero);

	if (!budget)
		return 0;
	if (now - budget->window_start_ns >= TG_NSEC_PER_SEC) {
		budget->window_start_ns = now;
		budget->sent = 0;
	}
	if (budget->sent >= per_second)
		return 0;
	budget->sent += 1;
	return 1;
}

static __always_inline void tg_event_count(__u32 kind, __u64 occurrences,
					   __u64 reported)
{
	struct tg_event_stats *stats =
		bpf_map_lookup_elem(&tg_event_stats, &kind);

	if (!stats)
		return;
	stats->occurrences += occurrences;
	stats->reported += reported;
}

/*
 * One occurrence of `kind`. Cheap when nothing is due: a hash lookup and an
 * atomic add. The CPU that claims a due report (compare-and-swap on its
 * time) takes every pending occurrence with it.
 */
static __always_inline void tg_event(const struct tg_config *config, __u64 now,
				     enum tg_event_kind kind, __u32 service_id,
				     __u32 detail, __u8 family,
				     const __u32 *addr)
{
	struct tg_event_key key = {
		.kind = kind,
		.family = family,
		.service_id = service_id,
		.detail = detail,
	};
	struct tg_event_aggregate fresh = {}, *aggregate;
	struct tg_event *event;
	__u64 last, count;

	tg_event_count(kind, 1, 0);
	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	aggregate = bpf_map_lookup_elem(&tg_event_aggregates, &key);
	if (!aggregate) {
		bpf_map_update_elem(&tg_event_aggregates, &key, &fresh,
				    BPF_NOEXIST);
		aggregate = bpf_map_lookup_elem(&tg_event_aggregates, &key);
		if (!aggregate)
			return;
	}
	__sync_fetch_and_add(&aggregate->pending, 1);

	last = *(volatile __u64 *)&aggregate->last_report_ns;
	if (last != 0 && now - last < config->event_interval_ns)
		return;
	if (!tg_budget_take(&tg_event_budget, config->events_per_cpu, now))
		return;
	/* `now` is never 0 on a running system; a claim needs it different. */
	if (__sync_val_compare_and_swap(&aggregate->last_report_ns, last,
					now) != last)
		return; /* another CPU reports it */
	count = __sync_lock_test_and_set(&aggregate->pending, 0);
	if (count == 0)
		return;

	event = bpf_ringbuf_reserve(&tg_events, sizeof(*event), 0);
	if (!event)
		return; /* ring full: lost, left counted as not reported */
	event->time_ns = now;
	event->kind = kind;
	event->family = family;
	event->pad = 0;
	event->service_id = service_id;
	event->detail = detail;
	event->count = count > 0xffffffff ? 0xffffffff : (__u32)count;
	__builtin_memcpy(event->addr, addr, sizeof(event->addr));
	bpf_ringbuf_submit(event, 0);
	tg_event_count(kind, 0, count);
}

#endif /* TG_LIB_EVENTS_H */
