#!/usr/bin/env bash
# Runs every banmesh test on a fresh Debian machine: installs the Debian
# packages the tests need (when missing, as root), then `cargo test`.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p banmesh-crdt`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need (CI and people install the same set):
# faketime runs a node with a wrong clock in the mesh tests; fail2ban checks
# the shipped action and jail files (`cargo test fail2ban`); python3 runs
# the Fail2BanSync clients against the gateway (`cargo test gateway`);
# nftables and iproute2 run a fail2ban-server with the shipped nftables
# action in a network namespace (`cargo test fail2ban_nft`, as root).
packages=(faketime fail2ban python3 nftables iproute2)

missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/test.sh: missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

exec cargo test --workspace --locked "$@"
