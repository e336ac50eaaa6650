//! Real `fail2ban-server`s for the tests: each on a private copy of
//! Debian's configuration with banmesh's shipped files, its socket, pid
//! file, database and log inside its own directory, `banaction = dummy`
//! (no firewall needed, the `banmesh` jail's action too) and `sshd` reading
//! a log file the test writes. [`Fail2BanServer::start_in_netns`] runs one
//! with a real firewall action in a network namespace of its own (root,
//! iproute2 and nftables), so the host's firewall is never touched.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use super::{arg, bin, signal};

/// Writes, at `path`, a node config that applies mesh bans to the Fail2Ban
/// whose config dir is `dir`, with `settings` after it (more `[fail2ban]`
/// keys, then other sections); returns `path`.
pub fn applying_config(path: &Path, dir: &Path, settings: &str) -> PathBuf {
    let text = format!("[fail2ban]\napply = true\nconfig_dir = \"{}\"\n{settings}", dir.display());
    std::fs::write(path, text).expect("node config");
    path.to_owned()
}

/// Fails the test, saying what to install, when Fail2Ban is missing.
pub fn require_fail2ban() {
    let found =
        Command::new("fail2ban-client").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        found,
        "these tests need Debian's fail2ban: apt-get install fail2ban (scripts/test.sh installs it)"
    );
}

/// Debian's Fail2Ban configuration with banmesh's files added, in `dir`,
/// with socket, pidfile, database and log inside `dir` and sshd reading a
/// log file there.
pub fn fail2ban_config(dir: &Path) {
    let copy = Command::new("cp").args(["-r", "/etc/fail2ban", arg(dir)]).status().expect("cp");
    assert!(copy.success(), "cannot copy /etc/fail2ban");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/fail2ban");
    for action in ["banmesh.conf", "banmesh-nftables.conf"] {
        let path = format!("action.d/{action}");
        std::fs::copy(shipped.join(&path), dir.join(&path)).expect("action");
    }
    std::fs::copy(shipped.join("jail.d/banmesh.conf"), dir.join("jail.d/banmesh.conf"))
        .expect("jail");
    std::fs::copy(
        shipped.join("jail.d/banmesh-publish.conf.example"),
        dir.join("jail.d/banmesh-publish.conf"),
    )
    .expect("publish example");
    let d = dir.display();
    std::fs::write(
        dir.join("fail2ban.local"),
        format!("[Definition]\nsocket = {d}/f2b.sock\npidfile = {d}/f2b.pid\ndbfile = {d}/f2b.sqlite3\nlogtarget = {d}/f2b.log\n"),
    )
    .expect("fail2ban.local");
    std::fs::write(dir.join("auth.log"), "").expect("auth.log");
    std::fs::write(
        dir.join("jail.local"),
        format!("[sshd]\nbackend = polling\nlogpath = {d}/auth.log\n"),
    )
    .expect("jail.local");
}

/// A real `fail2ban-server` on a private config dir, stopped when dropped
/// (killed, if its config dir is already gone).
pub struct Fail2BanServer {
    /// Its config dir, which also holds its socket, database and logs.
    pub dir: PathBuf,
    /// The server's process id, from its pid file, while it runs.
    pid: Cell<Option<u32>>,
    /// The network namespace it runs in, removed when dropped.
    netns: Option<String>,
}

/// Fails the test, saying what is needed, unless network namespaces and
/// nftables can be used: root, `ip` (iproute2) and `nft` (nftables).
pub fn require_netns() {
    let runs = |program: &str, arg: &str| {
        Command::new(program).arg(arg).output().is_ok_and(|o| o.status.success())
    };
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(root, "this test needs root, to make a network namespace for its firewall");
    assert!(
        runs("ip", "-V"),
        "this test needs iproute2: apt-get install iproute2 (scripts/test.sh installs it)"
    );
    assert!(
        runs("nft", "--version"),
        "this test needs nftables: apt-get install nftables (scripts/test.sh installs it)"
    );
}

/// Writes `jail.d/banmesh.local`, giving the `banmesh` jail `action`.
fn mesh_jail_action(dir: &Path, action: &str) {
    std::fs::write(dir.join("jail.d/banmesh.local"), format!("[banmesh]\naction = {action}\n"))
        .expect("banmesh.local");
}

impl Fail2BanServer {
    /// A server whose `sshd` ignores 127.0.0.1/8 and 10.57.0.0/24; its
    /// banmesh action points at no node.
    pub fn start(dir: &Path) -> Fail2BanServer {
        Fail2BanServer::configure(dir);
        let server = Fail2BanServer { dir: dir.to_owned(), pid: Cell::new(None), netns: None };
        server.launch();
        server
    }

    /// Writes [`Fail2BanServer::start`]'s configuration in `dir`.
    fn configure(dir: &Path) {
        require_fail2ban();
        fail2ban_config(dir);
        let d = dir.display();
        let mut local = std::fs::read_to_string(dir.join("jail.local")).expect("jail.local");
        local.push_str("[DEFAULT]\nbanaction = dummy\nbanaction_allports = dummy\n");
        local = local.replacen("[sshd]\n", "[sshd]\nignoreip = 127.0.0.1/8 10.57.0.0/24\n", 1);
        std::fs::write(dir.join("jail.local"), local).expect("jail.local");
        std::fs::write(dir.join("action.d/dummy.local"), format!("[Init]\ntarget = {d}/dummy\n"))
            .expect("dummy");
        mesh_jail_action(dir, "dummy");
    }

    /// A server as [`Fail2BanServer::start`] makes, but in a network
    /// namespace of its own, its `banmesh` jail with the shipped action
    /// (nftables), or `action` instead when given.
    pub fn start_in_netns(dir: &Path, action: Option<&str>) -> Fail2BanServer {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        require_netns();
        Fail2BanServer::configure(dir);
        match action {
            Some(action) => mesh_jail_action(dir, action),
            None => std::fs::remove_file(dir.join("jail.d/banmesh.local")).expect("banmesh.local"),
        }
        let name = format!("bmf2b-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let made = Command::new("ip").args(["netns", "add", &name]).status().expect("ip netns");
        assert!(made.success(), "cannot make the network namespace {name}");
        let server =
            Fail2BanServer { dir: dir.to_owned(), pid: Cell::new(None), netns: Some(name) };
        server.launch();
        server
    }

    /// What the `banmesh` jail's nftables set for `family` (`ip` or `ip6`)
    /// holds in the kernel, as `nft list set` prints it.
    pub fn nft_set(&self, family: &str) -> String {
        let netns = self.netns.as_deref().expect("a server in a network namespace");
        let set = if family == "ip6" { "addr6-set-banmesh" } else { "addr-set-banmesh" };
        let out = Command::new("ip")
            .args(["netns", "exec", netns, "nft", "list", "set", "inet", "f2b-table", set])
            .output()
            .expect("nft");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A server on one host of a mesh: the shipped banmesh action on `sshd`
    /// (bantime 1h, reading `auth.log`) and on `sshd-short` (bantime 20 s,
    /// reading `short.log`), handing bans to the node at `node_socket`;
    /// two failures ban; `sshd` also ignores `ignoreip`.
    pub fn start_publishing(dir: &Path, node_socket: &Path, ignoreip: &str) -> Fail2BanServer {
        require_fail2ban();
        fail2ban_config(dir);
        let d = dir.display();
        std::fs::write(dir.join("short.log"), "").expect("short.log");
        std::fs::write(
            dir.join("jail.local"),
            format!(
                "[DEFAULT]\nbanaction = dummy\nbanaction_allports = dummy\n\n\
                 [sshd]\nbackend = polling\nlogpath = {d}/auth.log\nmaxretry = 2\nfindtime = 10m\n\
                 bantime = 1h\nignoreip = 127.0.0.1/8 {ignoreip}\n\n\
                 [sshd-short]\nenabled = true\nfilter = sshd\nbackend = polling\n\
                 logpath = {d}/short.log\nmaxretry = 2\nfindtime = 10m\nbantime = 20\n\
                 action = %(action_)s\n         banmesh\n"
            ),
        )
        .expect("jail.local");
        std::fs::write(dir.join("action.d/dummy.local"), format!("[Init]\ntarget = {d}/dummy\n"))
            .expect("dummy");
        std::fs::write(
            dir.join("action.d/banmesh.local"),
            format!("[Init]\nsocket = {}\n", node_socket.display()),
        )
        .expect("banmesh.local");
        mesh_jail_action(dir, "dummy");
        let server = Fail2BanServer { dir: dir.to_owned(), pid: Cell::new(None), netns: None };
        server.launch();
        server
    }

    /// Starts the server, with the `banmesh` under test first on its PATH
    /// (the action runs `banmesh fail2ban ban`).
    pub fn launch(&self) {
        let bin_dir = bin().parent().expect("bin dir").to_owned();
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
        let mut command = match &self.netns {
            Some(netns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns, "fail2ban-client"]);
                c
            }
            None => Command::new("fail2ban-client"),
        };
        let out = command
            .args(["-c", arg(&self.dir), "start"])
            .env("PATH", path)
            .output()
            .expect("start");
        assert!(
            out.status.success(),
            "fail2ban-server did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid = std::fs::read_to_string(self.dir.join("f2b.pid")).unwrap_or_default();
        self.pid.set(pid.trim().parse().ok());
    }

    /// Stops the server (its database keeps the bans it restores).
    pub fn stop(&self) {
        let out = self.client(&["stop"]);
        assert!(out.status.success(), "stop: {}", String::from_utf8_lossy(&out.stderr));
        self.pid.set(None);
    }

    /// Runs `fail2ban-client -c DIR ARGS`.
    pub fn client(&self, args: &[&str]) -> Output {
        Command::new("fail2ban-client")
            .args(["-c", arg(&self.dir)])
            .args(args)
            .output()
            .expect("fail2ban-client")
    }

    /// What `jail` holds (`get JAIL banip`); empty when the call fails.
    pub fn jail(&self, jail: &str) -> Vec<String> {
        let out = self.client(&["get", jail, "banip"]);
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
    }

    /// What the `banmesh` jail holds, as text.
    pub fn banmesh_jail(&self) -> String {
        self.jail("banmesh").join(" ")
    }

    /// Whether `jail` holds `ip`.
    pub fn holds(&self, jail: &str, ip: &str) -> bool {
        self.jail(jail).iter().any(|s| s == ip)
    }

    /// Appends `count` failed sshd logins from `ip` to `log` (in this
    /// server's dir), stamped now as syslog does and Debian's sshd filter reads.
    pub fn fail_logins(&self, log: &str, ip: &str, count: usize) {
        use std::io::Write as _;
        let stamp = Command::new("date").arg("+%b %d %H:%M:%S").output().expect("date");
        let stamp = String::from_utf8_lossy(&stamp.stdout).trim().to_owned();
        let mut file =
            std::fs::OpenOptions::new().append(true).open(self.dir.join(log)).expect("open log");
        for i in 0..count {
            writeln!(
                file,
                "{stamp} host sshd[{}]: Failed password for root from {ip} port 22 ssh2",
                1000 + i
            )
            .expect("write log");
        }
    }
}

impl Drop for Fail2BanServer {
    fn drop(&mut self) {
        let stopped = Command::new("fail2ban-client")
            .args(["-c", arg(&self.dir), "stop"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !stopped && let Some(pid) = self.pid.get() {
            signal(pid, "TERM");
        }
        if let Some(netns) = &self.netns {
            let _ = Command::new("ip").args(["netns", "del", netns]).status();
        }
    }
}
