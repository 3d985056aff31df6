/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef TG_LIB_COUNTERS_H
#define TG_LIB_COUNTERS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"

/* Count a packet under a reason of tg_drops. */
static __always_inline void tg_count_drop(enum tg_drop_reason reason)
{
	__u32 key = reason;
	__u64 *count = bpf_map_lookup_elem(&tg_drops, &key);

	if (count)
		*count += 1;
}

/* Count a drop under its reason and return the verdict, in one step. */
static __always_inline int tg_drop(enum tg_drop_reason reason)
{
	tg_count_drop(reason);
	return XDP_DROP;
}

static __always_inline void tg_count_traffic(void *stats_map, __u32 index,
					     __u64 bytes, int new_flow)
{
	struct tg_counters *counters = bpf_map_lookup_elem(stats_map, &index);

	if (!counters)
		return;
	counters->packets += 1;
	counters->bytes += bytes;
	counters->new_flows += new_flow;
}

/* Fields of struct tg_backend_health, for tg_count_health(). */
enum tg_health_event {
	TG_HEALTH_HANDSHAKE,
	TG_HEALTH_SYN_RETRANSMIT,
	TG_HEALTH_SYN_RESET,
	TG_HEALTH_RETRIED,
	TG_HEALTH_UDP_REPLY,
	TG_HEALTH_UDP_UNREACHABLE,
};

static __always_inline void tg_count_health(__u32 backend_index,
					    enum tg_health_event event)
{
	struct tg_backend_health *health =
		bpf_map_lookup_elem(&tg_backend_health, &backend_index);

	if (!health)
		return;
	switch (event) {
	case TG_HEALTH_HANDSHAKE:
		health->handshakes += 1;
		break;
	case TG_HEALTH_SYN_RETRANSMIT:
		health->syn_retransmits += 1;
		break;
	case TG_HEALTH_SYN_RESET:
		health->syn_resets += 1;
		break;
	case TG_HEALTH_RETRIED:
		health->retried += 1;
		break;
	case TG_HEALTH_UDP_REPLY:
		health->udp_replies += 1;
		break;
	case TG_HEALTH_UDP_UNREACHABLE:
		health->udp_unreachable += 1;
		break;
	}
}

#endif /* TG_LIB_COUNTERS_H */
