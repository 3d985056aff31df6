#!/usr/bin/env bash
# Checks vagrant/Vagrantfile with `vagrant validate`, offline, leaving nothing
# behind: Vagrant's home and the machine's .vagrant directory go to a
# temporary directory. With the vagrant-libvirt plugin present the libvirt
# provider block is checked too; without it, with --ignore-provider (Vagrant
# then has no usable provider and validate would fail on that alone).
# Exit 77 (skipped) when vagrant is not installed.
set -euo pipefail

if ! command -v vagrant >/dev/null; then
  echo "validate.sh: vagrant is not installed (Debian: vagrant vagrant-libvirt); skipped"
  exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_HOME=$tmp/home VAGRANT_DOTFILE_PATH=$tmp/dot
VAGRANT_CWD=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../vagrant" && pwd)
export VAGRANT_CWD

if vagrant plugin list | grep -q '^vagrant-libvirt '; then
  VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate
else
  echo "validate.sh: no vagrant-libvirt plugin: the libvirt provider block is not checked"
  vagrant validate --ignore-provider
fi
