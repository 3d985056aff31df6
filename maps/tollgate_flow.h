/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The rules on a tracked flow that the data path applies to every packet
 * and the agent to its flow counts (what a drain waits for): its idle
 * timeout by state, and whether it still holds its backend. Pure functions
 * of the ABI structs, valid in BPF C and in C++.
 */
#ifndef TOLLGATE_FLOW_H
#define TOLLGATE_FLOW_H

#include "tollgate_abi.h"

/* Inlined in BPF (as __always_inline), an ordinary inline in the agent. */
#define TG_SHARED_INLINE static inline __attribute__((always_inline))

/* The idle timeout of a flow in `state` (enum tg_flow_state). */
TG_SHARED_INLINE __u64 tg_flow_timeout(const struct tg_config *config,
				       __u8 state)
{
	switch (state) {
	case TG_FLOW_TCP_SYN:
		return config->tcp_syn_timeout_ns;
	case TG_FLOW_TCP_ESTABLISHED:
		return config->tcp_established_timeout_ns;
	case TG_FLOW_TCP_CLOSING:
		return config->tcp_closing_timeout_ns;
	default:
		return config->udp_timeout_ns;
	}
}

/*
 * Idle past its timeout at `now` (coarse monotonic ns). Signed: another CPU
 * may have stamped the flow after `now` was read.
 */
TG_SHARED_INLINE int tg_flow_expired(const struct tg_flow *flow,
				     const struct tg_config *config, __u64 now)
{
	return (__s64)(now - flow->last_seen_ns) >
	       (__s64)tg_flow_timeout(config, flow->state);
}

/*
 * Whether a flow, for a packet to the service `service_id`, still holds
 * `backend`: the tg_backends slot at its backend_index (NULL: none). It
 * does while the flow was steered by that service and the slot still holds
 * the backend it was steered to (generation), of that service, up or
 * draining. Otherwise its next packet selects a backend anew.
 */
TG_SHARED_INLINE int tg_flow_holds_backend(const struct tg_flow *flow,
					   __u32 service_id,
					   const struct tg_backend *backend)
{
	if (flow->service_id != service_id || !backend)
		return 0;
	if (backend->generation != flow->backend_generation ||
	    backend->service_id != service_id)
		return 0;
	return backend->state == TG_BACKEND_UP ||
	       backend->state == TG_BACKEND_DRAINING;
}

#endif /* TOLLGATE_FLOW_H */
