#!/bin/bash
# `cmake --install` into a scratch root (DESTDIR): the binaries, the systemd
# unit, its defaults and the configuration land in their FHS places; the
# installed binaries run; the unit passes `systemd-analyze verify` and
# rates "OK" or better in `systemd-analyze security`.
# Usage: install.sh BUILD_DIR PREFIX UNIT_DIR SYSCONFDIR VERSION
set -euo pipefail
build=$1 prefix=$2 unit_dir=$3 sysconfdir=$4 version=$5
root=$(mktemp -d /tmp/tollgate-install.XXXXXX)
trap 'rm -rf "$root"' EXIT

DESTDIR=$root cmake --install "$build" > "$root.log" 2>&1 || { cat "$root.log"; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
for file in "$prefix/sbin/tollgated" "$prefix/bin/tollgate" "$unit_dir/tollgated.service" \
            "$sysconfdir/default/tollgated" "$sysconfdir/tollgate/tollgate.json" "$prefix/share/doc/tollgate/README.md"; do
  [[ -e $root$file ]] || { echo "FAIL: $file not installed"; exit 1; }
  echo "installed: $file"
done
[[ $("$root$prefix/sbin/tollgated" --version) == "tollgated $version" ]] || { echo "FAIL: tollgated --version"; exit 1; }
[[ $("$root$prefix/bin/tollgate" --version) == "tollgate $version" ]] || { echo "FAIL: tollgate --version"; exit 1; }
echo "both binaries report $version"

unit=$root$unit_dir/tollgated.service
grep -q "^ExecStart=$prefix/sbin/tollgated --config $sysconfdir/tollgate/tollgate.json " "$unit" ||
  { echo "FAIL: ExecStart does not name the installed binary and config"; grep ExecStart "$unit"; exit 1; }
if ! command -v systemd-analyze > /dev/null; then
  echo "SKIPPED: systemd-analyze missing, the unit is not verified"
  exit 77
fi
# verify checks that ExecStart exists: point it into the scratch root.
checked=$root/tollgated.service
sed "s|^ExecStart=$prefix/sbin/tollgated|ExecStart=$root$prefix/sbin/tollgated|" "$unit" > "$checked"
systemd-analyze verify "$checked"
exposure=$(systemd-analyze security --offline=yes "$checked" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p')
echo "systemd-analyze security: exposure $exposure"
case ${exposure#* } in
  SAFE | OK) ;;
  *) echo "FAIL: exposure '$exposure' is worse than OK"; exit 1 ;;
esac
