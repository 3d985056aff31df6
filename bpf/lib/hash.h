/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Flow hash for backend selection. Fixed seed: every gateway running the
 * same tables maps a flow to the same backend (Maglev's point).
 */
#ifndef TG_LIB_HASH_H
#define TG_LIB_HASH_H

#include <linux/types.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "tollgate_abi.h"

#define TG_HASH_SEED 0x9747b28cU

static __always_inline __u32 tg_rotl32(__u32 value, int shift)
{
	return (value << shift) | (value >> (32 - shift));
}

/* One MurmurHash3 round over a 32-bit word. */
static __always_inline __u32 tg_hash_mix(__u32 hash, __u32 word)
{
	word *= 0xcc9e2d51U;
	word = tg_rotl32(word, 15);
	word *= 0x1b873593U;
	hash ^= word;
	hash = tg_rotl32(hash, 13);
	return hash * 5 + 0xe6546b64U;
}

static __always_inline __u32 tg_hash_final(__u32 hash, __u32 length)
{
	hash ^= length;
	hash ^= hash >> 16;
	hash *= 0x85ebca6bU;
	hash ^= hash >> 13;
	hash *= 0xc2b2ae35U;
	hash ^= hash >> 16;
	return hash;
}

static __always_inline __u32 tg_hash_flow(const struct tg_flow_key *key)
{
	__u32 hash = TG_HASH_SEED;

#pragma unroll
	for (int i = 0; i < 4; i++)
		hash = tg_hash_mix(hash, key->src_addr[i]);
#pragma unroll
	for (int i = 0; i < 4; i++)
		hash = tg_hash_mix(hash, key->dst_addr[i]);
	hash = tg_hash_mix(hash, ((__u32)key->src_port << 16) | key->dst_port);
	hash = tg_hash_mix(hash, key->protocol);
	return tg_hash_final(hash, sizeof(*key));
}

/* `addr` masked to its first `bits` bits (network byte order words). */
static __always_inline void tg_mask_address(__u32 *out, const __u32 *addr,
					    __u32 bits)
{
#pragma unroll
	for (__u32 i = 0; i < 4; i++) {
		__u32 keep = bits > 32 * i ? bits - 32 * i : 0;

		if (keep >= 32)
			out[i] = addr[i];
		else if (keep == 0)
			out[i] = 0;
		else
			out[i] = addr[i] & bpf_htonl(~0U << (32 - keep));
	}
}

/* Source affinity: the hash of the client's address masked to `bits`. */
static __always_inline __u32 tg_hash_source(const struct tg_flow_key *key,
					    __u32 bits)
{
	__u32 hash = TG_HASH_SEED, source[4];

	tg_mask_address(source, key->src_addr, bits);
#pragma unroll
	for (int i = 0; i < 4; i++)
		hash = tg_hash_mix(hash, source[i]);
	hash = tg_hash_mix(hash, key->family);
	return tg_hash_final(hash, sizeof(source));
}

#endif /* TG_LIB_HASH_H */
