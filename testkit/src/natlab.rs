//! A small internet in network namespaces, with real kernel NATs.
//!
//! ```text
//!                 "wan" namespace: bridge br0, the public segment 203.0.113.0/24
//!        +--------------+---------------+------------------+
//!     server        router 1         router 2   ...   public hosts
//!   203.0.113.1   203.0.113.11     203.0.113.12        203.0.113.1xx
//!                 LAN 198.51.100.16/28 (bridge "lan" in the router)
//!                   |         |
//!                 host a    router 3 (NAT behind a NAT), LAN 198.51.100.48/28 ...
//! ```
//!
//! Every node is a namespace of its own named `pl-<tag>-<pid>-<n><node>`, the
//! prefix chosen per test so that parallel tests never meet; a lab removes
//! its namespaces (and ends the processes it started in them) when dropped,
//! and on creation removes namespaces of its prefix whose creating process
//! is gone. Only documentation ranges are used inside.
//!
//! Routers NAT with nftables: the [`Nat`] kinds are the rules in
//! [`Nat::ruleset`]. Processes run in a node with `ip netns exec`
//! ([`Node::command`]); sockets can be opened in a node from the test
//! process itself ([`Node::udp_socket`]), since a socket keeps the
//! namespace it was made in.

use std::fmt;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::delay::Delays;

/// Set (to `1`) where the lab must run, as in CI: then a missing
/// capability fails the test instead of skipping it.
pub const REQUIRE_ENV: &str = "PARLEY_REQUIRE_NETNS";

/// How long a datagram takes on each node's link to the public segment,
/// each way: two homes are 40 ms apart, as on one continent.
pub const ACCESS_DELAY: Duration = Duration::from_millis(20);

/// The server's address on the public segment.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// What a router does to UDP between its LAN and the public segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Nat {
    /// `masquerade`: keeps the host's port when free, one mapping per
    /// destination in conntrack, and lets in only replies (the commonest
    /// home router: endpoint-independent mapping in practice,
    /// address-and-port-dependent filtering).
    Masquerade,
    /// `masquerade random`: a fresh random port for every destination
    /// (endpoint-dependent mapping, "symmetric"), as many mobile carriers.
    Symmetric,
    /// `masquerade` plus a dynamic map that lets anyone reach a port a host
    /// has sent from ("full cone": endpoint-independent filtering too).
    FullCone,
    /// `masquerade` with UDP conntrack entries that expire after 15 s.
    ShortTimeout,
    /// `masquerade` with 20% of datagrams lost each way on the WAN link.
    Lossy,
}

impl Nat {
    /// Every kind, in the order the matrix prints them.
    pub const ALL: [Nat; 5] = [
        Nat::Masquerade,
        Nat::Symmetric,
        Nat::FullCone,
        Nat::ShortTimeout,
        Nat::Lossy,
    ];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Nat::Masquerade => "masquerade",
            Nat::Symmetric => "symmetric",
            Nat::FullCone => "full-cone",
            Nat::ShortTimeout => "timeout-15s",
            Nat::Lossy => "lossy-20%",
        }
    }

    /// Whether the router maps one host port to one public port for every
    /// destination (what `parley netcheck` should find).
    pub fn endpoint_independent_mapping(self) -> bool {
        self != Nat::Symmetric
    }

    /// The nftables ruleset of a router of this kind; its upstream link is
    /// `wan` and its LAN bridge `lan`.
    pub fn ruleset(self) -> String {
        let masq = if self == Nat::Symmetric {
            "masquerade random"
        } else {
            "masquerade"
        };
        let mut r = format!(
            "table ip parley {{
  chain post {{ type nat hook postrouting priority 100; policy accept;
    oifname \"wan\" {masq};
  }}
"
        );
        if self == Nat::FullCone {
            // Masquerade keeps the host's port, so the public port names
            // the host: remember who sent from each port and send there
            // whatever arrives for it, from anyone.
            r.push_str(
                "  map cone { type inet_service : ipv4_addr; flags dynamic,timeout; timeout 120s; }
  chain outbound { type filter hook forward priority 0; policy accept;
    iifname \"lan\" oifname \"wan\" meta l4proto udp update @cone { udp sport timeout 120s : ip saddr };
  }
  chain pre { type nat hook prerouting priority -100; policy accept;
    iifname \"wan\" meta l4proto udp dnat ip to udp dport map @cone;
  }
",
            );
        }
        if self == Nat::Lossy {
            r.push_str(
                "  chain loss_in { type filter hook prerouting priority -300; policy accept;
    iifname \"wan\" numgen random mod 100 < 20 drop;
  }
  chain loss_out { type filter hook postrouting priority 300; policy accept;
    oifname \"wan\" numgen random mod 100 < 20 drop;
  }
",
            );
        }
        r.push_str("}\n");
        r
    }
}

impl fmt::Display for Nat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the lab could not do something.
#[derive(Debug)]
pub enum LabError {
    /// This machine or user cannot build the lab (not root, no `ip` or
    /// `nft`, no network namespaces).
    Unavailable(String),
    /// A command the lab ran failed.
    Command {
        /// The command line.
        cmd: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// An I/O error outside a command.
    Io(String),
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::Unavailable(why) => write!(f, "the NAT lab cannot run here: {why}"),
            LabError::Command { cmd, stderr } => {
                write!(f, "the lab command `{cmd}` failed: {}", stderr.trim())
            }
            LabError::Io(e) => write!(f, "the lab hit an I/O error: {e}"),
        }
    }
}

impl std::error::Error for LabError {}

/// Whether the environment demands the lab ([`REQUIRE_ENV`] is `1`).
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// A lab for test `tag`, or `None` (after printing why) where the machine
/// cannot build one and [`REQUIRE_ENV`] is not set; panics if it is set.
pub fn lab_or_skip(tag: &str) -> Option<Lab> {
    match Lab::new(tag) {
        Ok(lab) => Some(lab),
        Err(LabError::Unavailable(why)) if !required() => {
            eprintln!(
                "skipping the NAT lab test {tag}: {why} (set {REQUIRE_ENV}=1 to fail instead)"
            );
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// A node of the lab: a namespace with an address.
#[derive(Clone, Debug)]
pub struct Node {
    /// The namespace's name.
    pub ns: String,
    /// Its address on its uplink (public for the server, routers and
    /// public hosts; on its router's LAN for a host behind one).
    pub ip: Ipv4Addr,
}

/// A NAT router of the lab.
#[derive(Clone, Debug)]
pub struct Router {
    /// The router's own node; `node.ip` is its address upstream (public,
    /// or on the outer router's LAN for a NAT behind a NAT).
    pub node: Node,
    /// What it does to UDP.
    pub nat: Nat,
    lan: Ipv4Addr,
    hosts: u8,
}

impl Router {
    /// The router's address on its LAN (the hosts' gateway).
    pub fn lan_ip(&self) -> Ipv4Addr {
        self.lan
    }
}

impl Node {
    /// `program` to be run inside this node (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }

    /// Run `program args` in this node and return its output, failing on
    /// a non-zero exit.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<Output, LabError> {
        let mut c = self.command(program);
        c.args(args);
        checked(
            &mut c,
            &format!("[{}] {program} {}", self.ns, args.join(" ")),
        )
    }

    /// A UDP socket bound in this node to `port` (0: any) on all its
    /// addresses; it stays in the node's namespace wherever it is used.
    pub fn udp_socket(&self, port: u16) -> Result<UdpSocket, LabError> {
        in_namespace(&self.ns, || {
            UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
                .map_err(|e| LabError::Io(format!("bind in {}: {e}", self.ns)))
        })
    }
}

/// `f` run on a fresh thread inside namespace `ns`: what it opens there
/// (a socket, a device) stays in `ns` wherever it is used.
pub(crate) fn in_namespace<R: Send>(
    ns: &str,
    f: impl FnOnce() -> Result<R, LabError> + Send,
) -> Result<R, LabError> {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = fs::File::open(&path).map_err(|e| LabError::Io(format!("{path}: {e}")))?;
            // SAFETY: setns(2) on this fresh thread only, with a
            // namespace file descriptor that lives across the call.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(LabError::Io(format!(
                    "setns {path}: {}",
                    io::Error::last_os_error()
                )));
            }
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(LabError::Io("the setns thread panicked".into())))
    })
}

/// A lab: its namespaces exist as long as it does.
pub struct Lab {
    prefix: String,
    delays: Option<Delays>,
    wan: String,
    namespaces: Vec<String>,
    next_public: u8,
    next_lan: u8,
    next_port: u16,
}

/// Namespace names of every lab start with this.
const FAMILY: &str = "pl-";

impl Lab {
    /// Build the public segment for test `tag` (letters, digits, `-`;
    /// at most 16 bytes), after removing what earlier runs of the same tag
    /// left behind.
    pub fn new(tag: &str) -> Result<Lab, LabError> {
        if tag.is_empty()
            || tag.len() > 16
            || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(LabError::Io(format!("bad lab tag {tag:?}")));
        }
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(LabError::Unavailable(
                "network namespaces need root (run the tests as root)".into(),
            ));
        }
        for tool in [("ip", "-V"), ("nft", "--version")] {
            let ok = Command::new(tool.0)
                .arg(tool.1)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let pkg = if tool.0 == "ip" {
                    "iproute2"
                } else {
                    "nftables"
                };
                return Err(LabError::Unavailable(format!(
                    "`{}` is missing (apt-get install {pkg})",
                    tool.0
                )));
            }
        }
        let base = format!("{FAMILY}{tag}-");
        remove_stale(&base);
        let prefix = format!("{base}{}-", std::process::id());
        let mut lab = Lab {
            delays: Some(Delays::start()),
            wan: format!("{prefix}0wan"),
            prefix,
            namespaces: Vec::new(),
            next_public: 10,
            next_lan: 1,
            next_port: 0,
        };
        if let Err(e) = lab.add_ns("wan") {
            // The first namespace is the test of whether this machine can.
            return Err(LabError::Unavailable(format!(
                "cannot make a network namespace: {e}"
            )));
        }
        let wan = lab.wan.clone();
        ip(&["-n", &wan, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &wan, "link", "set", "br0", "up"])?;
        Ok(lab)
    }

    /// The namespaces this lab made, the public segment's first.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    fn add_ns(&mut self, node: &str) -> Result<String, LabError> {
        // Numbered, so that names given twice still make two nodes.
        let ns = format!("{}{}{node}", self.prefix, self.namespaces.len());
        ip(&["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Wire a new namespace `node` to the public segment at 203.0.113.`host`,
    /// through a link of [`ACCESS_DELAY`].
    fn attach_public(&mut self, node: &str, host: u8) -> Result<Node, LabError> {
        let ns = self.add_ns(node)?;
        self.next_port += 1;
        let port = format!("p{}", self.next_port);
        let wan = self.wan.clone();
        let delays = self
            .delays
            .as_ref()
            .ok_or_else(|| LabError::Io("the lab is being taken down".into()))?;
        delays.link((&wan, &port), (&ns, "wan"), ACCESS_DELAY)?;
        ip(&["-n", &wan, "link", "set", &port, "master", "br0", "up"])?;
        let addr = Ipv4Addr::new(203, 0, 113, host);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "wan",
        ])?;
        ip(&["-n", &ns, "link", "set", "wan", "up"])?;
        Ok(Node { ns, ip: addr })
    }

    /// Wire a new namespace `node` into `router`'s LAN, with its default
    /// route through the router.
    fn attach_lan(
        &mut self,
        router: &mut Router,
        node: &str,
        uplink: &str,
    ) -> Result<Node, LabError> {
        if router.hosts >= 13 {
            return Err(LabError::Io("a router's LAN holds 13 hosts".into()));
        }
        let ns = self.add_ns(node)?;
        router.hosts += 1;
        let port = format!("h{}", router.hosts);
        let rns = router.node.ns.clone();
        ip(&[
            "-n", &rns, "link", "add", &port, "type", "veth", "peer", "name", uplink, "netns", &ns,
        ])?;
        ip(&["-n", &rns, "link", "set", &port, "master", "lan", "up"])?;
        let [a, b, c, d] = router.lan.octets();
        let addr = Ipv4Addr::new(a, b, c, d + router.hosts);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/28"),
            "dev",
            uplink,
        ])?;
        ip(&["-n", &ns, "link", "set", uplink, "up"])?;
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            &router.lan.to_string(),
        ])?;
        Ok(Node { ns, ip: addr })
    }

    /// The server's host, at [`SERVER_IP`]. Call once.
    pub fn server(&mut self) -> Result<Node, LabError> {
        self.attach_public("server", SERVER_IP.octets()[3])
    }

    /// A host on the public segment with no NAT in front of it.
    pub fn public_host(&mut self, name: &str) -> Result<Node, LabError> {
        let host = self.next_public_ip()?;
        self.attach_public(name, host)
    }

    fn next_public_ip(&mut self) -> Result<u8, LabError> {
        if self.next_public >= 250 {
            return Err(LabError::Io("the public segment is full".into()));
        }
        self.next_public += 1;
        Ok(self.next_public)
    }

    /// A router of kind `nat` on the public segment.
    pub fn router(&mut self, name: &str, nat: Nat) -> Result<Router, LabError> {
        let host = self.next_public_ip()?;
        let node = self.attach_public(name, host)?;
        self.make_router(node, nat)
    }

    /// A router of kind `nat` whose upstream is `outer`'s LAN (a NAT
    /// behind a NAT).
    pub fn router_behind(
        &mut self,
        outer: &mut Router,
        name: &str,
        nat: Nat,
    ) -> Result<Router, LabError> {
        let node = self.attach_lan(outer, name, "wan")?;
        self.make_router(node, nat)
    }

    /// A host behind `router`.
    pub fn host_behind(&mut self, router: &mut Router, name: &str) -> Result<Node, LabError> {
        self.attach_lan(router, name, "eth0")
    }

    fn make_router(&mut self, node: Node, nat: Nat) -> Result<Router, LabError> {
        let k = self.next_lan;
        if k > 30 {
            return Err(LabError::Io("the lab has room for 30 routers".into()));
        }
        self.next_lan += 1;
        // 15 LANs of 16 addresses in each of two documentation ranges.
        let lan = if k <= 15 {
            Ipv4Addr::new(198, 51, 100, 16 * k + 1)
        } else {
            Ipv4Addr::new(192, 0, 2, 16 * (k - 15) + 1)
        };
        let ns = node.ns.clone();
        ip(&["-n", &ns, "link", "add", "lan", "type", "bridge"])?;
        ip(&["-n", &ns, "addr", "add", &format!("{lan}/28"), "dev", "lan"])?;
        ip(&["-n", &ns, "link", "set", "lan", "up"])?;
        node.run("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
        if nat == Nat::ShortTimeout {
            node.run(
                "sysctl",
                &[
                    "-qw",
                    "net.netfilter.nf_conntrack_udp_timeout=15",
                    "net.netfilter.nf_conntrack_udp_timeout_stream=15",
                ],
            )?;
        }
        let mut c = node.command("nft");
        c.args(["-f", "-"]);
        run_with_stdin(&mut c, &nat.ruleset(), &format!("[{ns}] nft -f - ({nat})"))?;
        Ok(Router {
            node,
            nat,
            lan,
            hosts: 0,
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The links first: a namespace lives on while a device of its is open.
        self.delays = None;
        for ns in self.namespaces.iter().rev() {
            kill_inside(ns);
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// End the processes inside one of this lab's namespaces: the lab started
/// them (through [`Node::command`]), and a namespace with a process left
/// in it outlives its name.
fn kill_inside(ns: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse::<i32>() {
            // SAFETY: kill(2) with a pid read from this namespace.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Remove the namespaces named `<base><pid>-...` whose creating process
/// `pid` no longer runs (a test that was killed never dropped its lab).
fn remove_stale(base: &str) {
    let Ok(dir) = fs::read_dir("/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(base) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

fn ip(args: &[&str]) -> Result<Output, LabError> {
    let mut c = Command::new("ip");
    c.args(args);
    checked(&mut c, &format!("ip {}", args.join(" ")))
}

fn checked(c: &mut Command, what: &str) -> Result<Output, LabError> {
    let out = c.output().map_err(|e| LabError::Command {
        cmd: what.to_string(),
        stderr: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: what.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(out)
}

fn run_with_stdin(c: &mut Command, input: &str, what: &str) -> Result<Output, LabError> {
    use std::io::Write;
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::Command {
            cmd: what.to_string(),
            stderr: e.to_string(),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| LabError::Io(e.to_string()))?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: what.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(out)
}
