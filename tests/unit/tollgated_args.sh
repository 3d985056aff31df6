#!/bin/bash
# tollgated's command line: --version, and usage errors that exit 2 with
# their reason before anything is loaded (CLI11's own exit codes never
# leak). Usage: tollgated_args.sh TOLLGATED VERSION
set -u
tollgated=$1 version=$2
failures=0

expect() {  # expect CODE PATTERN ARGS...: exit CODE, output matching PATTERN
  local code=$1 pattern=$2 output status
  shift 2
  output=$("$tollgated" "$@" 2>&1)
  status=$?
  if [[ $status -ne $code || ! $output =~ $pattern ]]; then
    echo "FAIL: tollgated $* -> exit $status (want $code), output: $output (want /$pattern/)"
    failures=$((failures + 1))
  else
    echo "ok: tollgated $* -> exit $status"
  fi
}

expect 0 "^tollgated ${version//./\\.}$" --version
expect 2 "--no-such-flag" --no-such-flag
expect 2 "--metrics-address: 'localhost' is not an IPv4 or IPv6 address" -i lo --metrics-address localhost:9464
expect 2 "--metrics-address" -i lo --metrics-address 127.0.0.1:70000
expect 2 "required unless --detach" --metrics-address off
expect 2 "--log-level" -i lo --log-level loud
expect 2 "--log-format" -i lo --log-format xml
expect 2 "no interface 'tg-no-such0' in this network namespace: nothing loaded" -i lo -b tg-no-such0
exit $((failures > 0))
