#!/usr/bin/env bash
# A three-node banmesh mesh on this machine, on the built-in default
# configuration: makes a cluster and three enrolled nodes in a temporary
# directory, starts them on loopback (each told only of the first), bans an
# address on node 2 and shows it on nodes 1 and 3. The nodes keep running
# until Ctrl-C; try `banmesh status --socket DIR/n1.sock` meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --locked -p banmesh-node
banmesh="${CARGO_TARGET_DIR:-$PWD/target}/debug/banmesh"
dir="${1:-$(mktemp -d -t banmesh-demo.XXXXXX)}"
mkdir -p "$dir"
cd "$dir"
base=$((20000 + RANDOM % 20000))

pids=()
cleanup() {
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    echo "stopped; files and logs are in $dir"
}
trap cleanup EXIT

"$banmesh" keys init-cluster --out cluster >/dev/null
for i in 1 2 3; do
    "$banmesh" keys init --out "n$i" >/dev/null
    "$banmesh" keys enroll --cluster-key cluster/cluster.key --node-pub "n$i/node.pub" \
        --name "node$i" --out "n$i/node.cert" >/dev/null
    "$banmesh" node --data-dir "n$i" --cluster-pub cluster/cluster.pub \
        --listen "/ip4/127.0.0.1/tcp/$((base + i))" --peer "/ip4/127.0.0.1/tcp/$((base + 1))" \
        --socket "$dir/n$i.sock" >"n$i.log" 2>&1 &
    pids+=("$!")
done

echo "started three nodes in $dir (logs: n1.log, n2.log, n3.log)"
for _ in $(seq 50); do
    connected=$("$banmesh" peers --socket "$dir/n3.sock" --json 2>/dev/null | grep -o '"connected"' | wc -l || true)
    [ "$connected" -ge 2 ] && break
    sleep 0.2
done
echo; echo "\$ banmesh peers --socket n1.sock"; "$banmesh" peers --socket "$dir/n1.sock"
echo; echo "\$ banmesh ban 192.0.2.7 --jail sshd --socket n2.sock"; "$banmesh" ban 192.0.2.7 --jail sshd --socket "$dir/n2.sock"
sleep 1
for i in 1 3; do
    echo; echo "\$ banmesh trace 192.0.2.7 --socket n$i.sock"; "$banmesh" trace 192.0.2.7 --socket "$dir/n$i.sock"
done
echo; echo "the mesh is running; press Ctrl-C to stop it"
wait
