//! Hosts that are not loopback: each a network namespace with its own
//! IPv4 and IPv6 address, wired by a veth pair to a bridge in a namespace of
//! its own (the switch), so nothing touches the machine's own network.
//! Links are cut and healed for real (the switch port goes down), hosts are
//! split into groups (one bridge per group), and `tc netem` adds delay or
//! loss. Needs root and iproute2; dropping a `Net` deletes its namespaces.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The port `banmesh node` listens on by default (`/ip4/0.0.0.0/tcp/4646`
/// and `/ip6/::/tcp/4646`).
pub const MESH_PORT: u16 = 4646;

/// Namespaces made by this test process, so parallel tests never share one.
static NEXT_NET: AtomicUsize = AtomicUsize::new(0);

/// Runs `ip ARGS` and panics with its error output when it fails.
pub fn ip(args: &[&str]) {
    run("ip", args);
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (apt-get install iproute2): {e}"));
    assert!(
        output.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Panics with what to do unless this test can make namespaces: it must run
/// as root with `ip` and `tc` (Debian's iproute2) installed.
pub fn require_root_and_iproute2() {
    let uid = Command::new("id").arg("-u").output().map(|o| o.stdout).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&uid).trim() == "0",
        "this test makes network namespaces: run it as root (scripts/test.sh does)"
    );
    for tool in ["ip", "tc"] {
        let found = Command::new(tool).arg("-V").stdout(Stdio::null()).status().is_ok();
        assert!(
            found,
            "`{tool}` not found: apt-get install iproute2 (scripts/test.sh installs it)"
        );
    }
}

/// One host: a namespace, its addresses on the switch.
#[derive(Debug, Clone)]
pub struct Host {
    /// The namespace's name.
    pub ns: String,
    /// Its IPv4 address (10.77.0.N/24).
    pub ip4: Ipv4Addr,
    /// Its IPv6 address (fd77::N/64).
    pub ip6: Ipv6Addr,
    /// Its port's name on the switch.
    port: String,
}

impl Host {
    /// The mesh multiaddr of a node on this host at the default port.
    pub fn mesh_addr(&self) -> String {
        format!("/ip4/{}/tcp/{MESH_PORT}", self.ip4)
    }

    /// A command run inside this host's namespace (`ip netns exec`, which
    /// execs the program, so the child's pid is the program's).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns, program]);
        command
    }
}

/// A switch and the hosts on it.
pub struct Net {
    /// The hosts, in order.
    pub hosts: Vec<Host>,
    /// The switch's namespace.
    switch: String,
    /// Bridges made for splits beyond the first (`br1`, ...).
    bridges: usize,
}

impl Net {
    /// `count` hosts on one bridge, every link up.
    pub fn new(count: usize) -> Net {
        require_root_and_iproute2();
        let n = NEXT_NET.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("bm{}n{n}", std::process::id());
        let switch = format!("{prefix}sw");
        let mut net = Net { hosts: Vec::new(), switch: switch.clone(), bridges: 1 };
        ip(&["netns", "add", &switch]);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for i in 0..count {
            let number = u8::try_from(i + 1).expect("at most 254 hosts");
            let host = Host {
                ns: format!("{prefix}h{number}"),
                ip4: Ipv4Addr::new(10, 77, 0, number),
                ip6: Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, u16::from(number)),
                port: format!("p{number}"),
            };
            net.add_host(&host);
            net.hosts.push(host);
        }
        net
    }

    fn add_host(&self, host: &Host) {
        let (ns, sw) = (host.ns.as_str(), self.switch.as_str());
        ip(&["netns", "add", ns]);
        // Both ends made inside their namespaces: no name is ever taken in
        // the machine's own namespace.
        ip(&[
            "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", &host.port,
            "netns", sw,
        ]);
        ip(&["-n", sw, "link", "set", &host.port, "master", "br0"]);
        ip(&["-n", sw, "link", "set", &host.port, "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        ip(&["-n", ns, "addr", "add", &format!("{}/24", host.ip4), "dev", "eth0"]);
        ip(&["-n", ns, "addr", "add", &format!("{}/64", host.ip6), "dev", "eth0", "nodad"]);
        ip(&["-n", ns, "link", "set", "eth0", "up"]);
    }

    /// Host `i`.
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// Cuts host `i` off the switch: its port goes down, packets to and
    /// from it are lost (no reset is sent: a real cable pulled).
    pub fn cut(&self, i: usize) {
        ip(&["-n", &self.switch, "link", "set", &self.hosts[i].port, "down"]);
    }

    /// Plugs host `i` back in.
    pub fn heal(&self, i: usize) {
        ip(&["-n", &self.switch, "link", "set", &self.hosts[i].port, "up"]);
    }

    /// Splits the hosts into groups that reach each other only within the
    /// group (one bridge per group); hosts in no group keep bridge 0.
    pub fn split(&mut self, groups: &[&[usize]]) {
        while self.bridges < groups.len() {
            let bridge = format!("br{}", self.bridges);
            ip(&["-n", &self.switch, "link", "add", &bridge, "type", "bridge"]);
            ip(&["-n", &self.switch, "link", "set", &bridge, "up"]);
            self.bridges += 1;
        }
        for (g, group) in groups.iter().enumerate() {
            for &i in *group {
                self.attach(i, g);
            }
        }
    }

    /// Puts every host back on bridge 0.
    pub fn join_all(&self) {
        for i in 0..self.hosts.len() {
            self.attach(i, 0);
        }
    }

    fn attach(&self, i: usize, bridge: usize) {
        let bridge = format!("br{bridge}");
        ip(&["-n", &self.switch, "link", "set", &self.hosts[i].port, "master", &bridge]);
    }

    /// Replaces host `i`'s outgoing queue with `tc netem ARGS`
    /// (e.g. `["delay", "20ms"]`, `["loss", "10%"]`). `Err` says why when
    /// it cannot: some kernels are built without `sch_netem` (the one this
    /// was written on is), so callers decide whether to go on without it.
    pub fn netem(&self, i: usize, args: &[&str]) -> Result<(), String> {
        let ns = &self.hosts[i].ns;
        let head = ["-n", ns.as_str(), "qdisc", "replace", "dev", "eth0", "root", "netem"];
        let output = Command::new("tc")
            .args([&head[..], args].concat())
            .output()
            .map_err(|e| format!("cannot run tc (apt-get install iproute2): {e}"))?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "tc netem {} failed (is the kernel's sch_netem available?): {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of each veth, and so the pair.
        for name in self.hosts.iter().map(|h| h.ns.as_str()).chain([self.switch.as_str()]) {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
