#!/usr/bin/env bash
# On a kernel that lacks what the data path needs (the entries of tools/vm's
# matrix marked unsupported), `tollgated --check-kernel` and a real start
# must refuse: exit 1, every missing feature named with the release that
# has it, and no verifier log. tools/vm test runs it inside such a VM.
#   tests/vm/unsupported_kernel.sh [BUILD-DIR]
set -euo pipefail
build=${1:-build}
namespace=tg-refuse
pins=/sys/fs/bpf/tg-refuse
tmp=$(mktemp -d)
cleanup() {
  ip netns del "$namespace" 2>/dev/null || true
  rm -rf "$tmp" "$pins"
}
trap cleanup EXIT
fail() {
  echo "unsupported_kernel: FAILED: $*" >&2
  exit 1
}

status=0
"$build/tollgated" --check-kernel >"$tmp/check" 2>&1 || status=$?
cat "$tmp/check"
[[ $status == 1 ]] || fail "--check-kernel exited $status, expected 1"
mapfile -t missing < <(sed -n 's/^  MISSING  \(.*\) (Linux [0-9.]*)$/\1/p' "$tmp/check")
((${#missing[@]} > 0)) || fail "--check-kernel names no missing feature"

# A real start, on a veth pair in a namespace of our own.
ip netns add "$namespace"
ip -n "$namespace" link add tga type veth peer name tgb
ip -n "$namespace" link set tga up
ip -n "$namespace" link set tgb up
status=0
nsenter --net="/run/netns/$namespace" "$build/tollgated" --interface tga --backend-interface tgb \
  --pin-dir "$pins" --state-dir "$tmp/state" --socket "$tmp/tollgate.sock" --audit-log "$tmp/audit.log" \
  >"$tmp/start" 2>&1 || status=$?
cat "$tmp/start"
[[ $status == 1 ]] || fail "tollgated exited $status, expected 1"
grep -q "lacks what tollgate's data path needs" "$tmp/start" || fail "no refusal naming the kernel's lack"
for feature in "${missing[@]}"; do
  grep -qF "$feature (Linux " "$tmp/start" || fail "the refusal does not name '$feature'"
done
if grep -qiE "verifier|PROG LOAD LOG" "$tmp/start"; then fail "a verifier log instead of a refusal"; fi
[[ ! -e $pins ]] || fail "pins made before the refusal"
echo "unsupported_kernel: refused as it should be (${#missing[@]} missing features named)"
