/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Policy, before connection tracking: access lists (global, then the
 * service's), per-source token buckets, and the service's cap on new
 * connections. Each costs nothing unless its flag says it is set.
 */
#ifndef TG_LIB_POLICY_H
#define TG_LIB_POLICY_H

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "events.h"
#include "hash.h"
#include "maps.h"

static __always_inline int tg_acl_match(void *trie, __u32 scope,
					const struct tg_flow_key *key)
{
	struct tg_acl_key acl = {
		.prefixlen = 64 + (key->family == TG_FAMILY_IPV4 ? 32 : 128),
		.scope = scope,
		.family = key->family,
	};

	__builtin_memcpy(acl.addr, key->src_addr, sizeof(acl.addr));
	return bpf_map_lookup_elem(trie, &acl) != NULL;
}

/*
 * 0 when the source may reach the service, else the drop reason. Deny wins
 * over allow; a set allow list admits only what it lists; the global lists
 * and the service's both apply.
 */
static __always_inline int
tg_acl_verdict(const struct tg_config *config,
	       const struct tg_service_policy *policy, __u32 service_id,
	       const struct tg_flow_key *key)
{
	if ((config->flags & TG_POLICY_DENY_LIST) &&
	    tg_acl_match(&tg_acl_deny, TG_SCOPE_GLOBAL, key))
		return TG_DROP_DENIED;
	if ((policy->flags & TG_POLICY_DENY_LIST) &&
	    tg_acl_match(&tg_acl_deny, service_id, key))
		return TG_DROP_DENIED;
	if ((config->flags & TG_POLICY_ALLOW_LIST) &&
	    !tg_acl_match(&tg_acl_allow, TG_SCOPE_GLOBAL, key))
		return TG_DROP_NOT_ALLOWED;
	if ((policy->flags & TG_POLICY_ALLOW_LIST) &&
	    !tg_acl_match(&tg_acl_allow, service_id, key))
		return TG_DROP_NOT_ALLOWED;
	return 0;
}

/*
 * GCRA: take one unit of `cost` ns from a bucket whose theoretical arrival
 * time is *tat and that may run `window` ns ahead of now (burst x cost).
 * After a long idle the time restarts from now, so a bucket never holds
 * more than its burst. Compare-and-swap, retried a few times against other
 * CPUs; a bucket that contended beyond that counts as empty.
 */
#define TG_GCRA_TRIES 4

static __always_inline int tg_gcra_take(__u64 *tat, __u64 now, __u64 cost,
					__u64 window)
{
#pragma unroll
	for (int i = 0; i < TG_GCRA_TRIES; i++) {
		__u64 old = *(volatile __u64 *)tat;
		__u64 start = old > now ? old : now;

		if (start + cost - now > window)
			return 0;
		if (__sync_val_compare_and_swap(tat, old, start + cost) == old)
			return 1;
	}
	return 0;
}

/*
 * Buckets run on the precise clock: the coarse one moves a tick (1 to 10
 * ms) at a time, and a bucket whose burst is less than a tick's worth of
 * its rate would then let through a burst per tick, not its rate.
 */

/* Whether the packet fits the source's bucket for this service. */
static __always_inline int
tg_source_conforms(const struct tg_service_policy *policy, __u32 service_id,
		   const struct tg_flow_key *key, __u64 bytes)
{
	struct tg_bucket_key bucket_key = {
		.service_id = service_id,
		.family = key->family,
	};
	struct tg_bucket fresh = {}, *bucket;
	__u64 packet_cost = 0, byte_cost, byte_window, now;

	tg_mask_address(bucket_key.addr, key->src_addr,
			key->family == TG_FAMILY_IPV4 ? policy->ipv4_prefix
						      : policy->ipv6_prefix);
	bucket = bpf_map_lookup_elem(&tg_source_buckets, &bucket_key);
	if (!bucket) {
		bpf_map_update_elem(&tg_source_buckets, &bucket_key, &fresh,
				    BPF_NOEXIST);
		bucket = bpf_map_lookup_elem(&tg_source_buckets, &bucket_key);
		if (!bucket)
			return 1; /* no room even by eviction: fail open */
	}
	now = bpf_ktime_get_ns();
	if (policy->packet_rate) {
		packet_cost = TG_NSEC_PER_SEC / policy->packet_rate;
		if (!tg_gcra_take(&bucket->packet_tat_ns, now, packet_cost,
				  policy->packet_burst * packet_cost))
			return 0;
	}
	if (policy->byte_rate) {
		byte_cost = bytes * TG_NSEC_PER_SEC / policy->byte_rate;
		byte_window = policy->byte_burst * TG_NSEC_PER_SEC /
			      policy->byte_rate;
		if (!tg_gcra_take(&bucket->byte_tat_ns, now, byte_cost,
				  byte_window)) {
			/* Not sent: give the packet's token back. */
			if (packet_cost)
				__sync_fetch_and_sub(&bucket->packet_tat_ns,
						     packet_cost);
			return 0;
		}
	}
	return 1;
}

/* Whether the service may take one more new connection now. */
static __always_inline int
tg_new_connection_conforms(const struct tg_service_policy *policy,
			   __u32 service_id)
{
	struct tg_conn_bucket *bucket;
	__u64 cost;

	if (!(policy->flags & TG_POLICY_CONN_LIMIT) || !policy->conn_rate)
		return 1;
	bucket = bpf_map_lookup_elem(&tg_conn_buckets, &service_id);
	if (!bucket)
		return 1;
	cost = TG_NSEC_PER_SEC / policy->conn_rate;
	return tg_gcra_take(&bucket->tat_ns, bpf_ktime_get_ns(), cost,
			    policy->conn_burst * cost);
}

/*
 * Access lists and the source's bucket, for every packet to the service.
 * 0: go on; otherwise the drop reason (reported as an event).
 */
static __always_inline int tg_admit(const struct tg_config *config,
				    const struct tg_service_policy *policy,
				    __u32 service_id,
				    const struct tg_flow_key *key, __u64 bytes,
				    __u64 now)
{
	int reason;

	if (!policy->flags &&
	    !(config->flags & (TG_POLICY_ALLOW_LIST | TG_POLICY_DENY_LIST)))
		return 0;
	reason = tg_acl_verdict(config, policy, service_id, key);
	if (reason) {
		tg_event(config, now, TG_EVENT_DENIED, service_id, reason,
			 key->family, key->src_addr);
		return reason;
	}
	if ((policy->flags & TG_POLICY_RATE_LIMIT) &&
	    !tg_source_conforms(policy, service_id, key, bytes)) {
		tg_event(config, now, TG_EVENT_RATE_LIMITED, service_id, 0,
			 key->family, key->src_addr);
		return TG_DROP_RATE_LIMITED;
	}
	return 0;
}

#endif /* TG_LIB_POLICY_H */
