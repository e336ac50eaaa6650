#!/usr/bin/env bash
# A first look at banmesh on a fresh machine: builds the binary, makes a
# cluster key, a node key and a certificate for it in a temporary directory,
# shows and verifies the certificate, then signs a ban record with the node key
# and checks it as a receiving node would. Pass a directory to keep the files.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --locked -p banmesh-node
banmesh="${CARGO_TARGET_DIR:-target}/debug/banmesh"
dir="${1:-$(mktemp -d -t banmesh-try.XXXXXX)}"

run() {
    echo "\$ banmesh $*"
    "$banmesh" "$@"
    echo
}

run keys init-cluster --out "$dir/cluster"
run keys init --out "$dir/node"
run keys enroll --cluster-key "$dir/cluster/cluster.key" --node-pub "$dir/node/node.pub" \
    --name web1 --roles ban,allow --valid-for 365d --out "$dir/node/node.cert"
run keys show "$dir/node/node.cert"
run keys verify --cluster-pub "$dir/cluster/cluster.pub" --cert "$dir/node/node.cert"
echo "\$ banmesh record sign --node-key $dir/node/node.key ban 192.0.2.9/24 --jail sshd"
record=$("$banmesh" record sign --node-key "$dir/node/node.key" ban 192.0.2.9/24 --jail sshd)
echo "$record"
echo
run record check --cluster-pub "$dir/cluster/cluster.pub" --cert "$dir/node/node.cert" "$record"
echo "files are in $dir"
