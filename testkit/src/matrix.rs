//! The NAT matrix: for each pair of places (no NAT, each NAT kind, a NAT
//! behind a NAT, two hosts behind one router), a real `parley send` from
//! one to a real `parley listen` at the other, through the real
//! `parley-server`: delivered or not, over which path, how fast.
//!
//! The path is what the sender reports (`parley send --json`): `lan`,
//! `direct` or `relayed` (chat acknowledged by the peer); or what can be
//! told from outside: `seed-fallback` (the sender gave up and sent the
//! peer a plain seed `Message`: a Parley peer downgraded, which issue 13
//! forbids), `one-way` (shown, never acknowledged) or `none`.

use std::time::{Duration, Instant};

use crate::natlab::{Lab, LabError, Nat, Node};
use crate::parley;
use crate::process::Running;

/// Where a host sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    /// On the public segment, no NAT.
    Public,
    /// Behind a router of this kind.
    Behind(Nat),
    /// Behind a masquerade router that is itself behind a masquerade router.
    Double,
}

impl Place {
    /// Every place, in the matrix's order.
    pub fn all() -> Vec<Place> {
        let mut v = vec![Place::Public];
        v.extend(Nat::ALL.iter().map(|n| Place::Behind(*n)));
        v.push(Place::Double);
        v
    }

    /// A short name for the matrix.
    pub fn name(self) -> String {
        match self {
            Place::Public => "public".into(),
            Place::Behind(n) => n.name().into(),
            Place::Double => "double-nat".into(),
        }
    }
}

/// A pair of hosts to connect.
#[derive(Clone, Debug)]
pub struct Pair {
    /// A name for the matrix row.
    pub name: String,
    /// The sender.
    pub a: Node,
    /// The receiver.
    pub b: Node,
    /// The paths a try may take ([`expected`]).
    pub expect: &'static [&'static str],
}

/// The paths a try between `x` and `y` may take: straight wherever a
/// direct path exists, and through the relay only where none does (a
/// symmetric NAT against a NAT that filters). Across a lossy router the
/// relay may carry the first message too: with 20% lost each way at
/// both ends, a direct round trip is not always proven within the 2 s
/// after which the relay is asked for.
pub fn expected(x: Place, y: Place) -> &'static [&'static str] {
    let open = |p: Place| matches!(p, Place::Public | Place::Behind(Nat::FullCone));
    let symmetric = |p: Place| p == Place::Behind(Nat::Symmetric);
    let lossy = |p: Place| p == Place::Behind(Nat::Lossy);
    if !(open(x) || open(y) || !(symmetric(x) || symmetric(y))) {
        &["relayed"]
    } else if lossy(x) || lossy(y) {
        &["direct", "relayed"]
    } else {
        &["direct"]
    }
}

/// Two hosts behind one router that does not hairpin: their LAN.
pub const SAME_ROUTER: &[&str] = &["lan"];

impl Pair {
    /// Whether outcome `o` is a delivery this pair should have had:
    /// exactly once, by an expected path.
    pub fn as_expected(&self, o: &Outcome) -> bool {
        o.ok() && self.expect.contains(&o.path)
    }
}

/// What one try gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `lan`, `direct`, `relayed`, `seed-fallback`, `one-way`, `duplicated`
    /// (shown more than once) or `none`.
    pub path: &'static str,
    /// From the start of `parley send` (which registers first) to the
    /// listener printing the message.
    pub time: Option<Duration>,
}

impl Outcome {
    /// Delivered as Parley chat, exactly once (not downgraded, not lost,
    /// not repeated).
    pub fn ok(&self) -> bool {
        matches!(self.path, "direct" | "lan" | "relayed")
    }
}

/// A lab with the server running, and a host in every place (two routers
/// of each kind, so a pair of one kind crosses two NATs of that kind).
pub struct World {
    /// The lab; dropping it ends everything.
    pub lab: Lab,
    _server: Running,
    hosts: Vec<(Place, Node, Node)>,
    lan: (Node, Node),
}

impl World {
    /// Build the world in a lab named `tag`.
    pub fn build(mut lab: Lab) -> Result<World, LabError> {
        let server = lab.server()?;
        let srv = parley::start_server(&server, &[])?;
        let mut hosts = Vec::new();
        for place in Place::all() {
            let mut two = Vec::new();
            for side in ["a", "b"] {
                let node = match place {
                    Place::Public => lab.public_host(side)?,
                    Place::Behind(nat) => {
                        let mut r = lab.router("r", nat)?;
                        lab.host_behind(&mut r, side)?
                    }
                    Place::Double => {
                        let mut outer = lab.router("outer", Nat::Masquerade)?;
                        let mut inner = lab.router_behind(&mut outer, "inner", Nat::Masquerade)?;
                        lab.host_behind(&mut inner, side)?
                    }
                };
                two.push(node);
            }
            let b = two.pop().ok_or_else(|| LabError::Io("no host".into()))?;
            let a = two.pop().ok_or_else(|| LabError::Io("no host".into()))?;
            hosts.push((place, a, b));
        }
        let mut r = lab.router("lan", Nat::Masquerade)?;
        let lan = (lab.host_behind(&mut r, "a")?, lab.host_behind(&mut r, "b")?);
        Ok(World {
            lab,
            _server: srv,
            hosts,
            lan,
        })
    }

    fn host(&self, place: Place, second: bool) -> Option<Node> {
        self.hosts
            .iter()
            .find(|(p, _, _)| *p == place)
            .map(|(_, a, b)| if second { b.clone() } else { a.clone() })
    }

    /// Every unordered pair of places, then the two hosts behind one router.
    pub fn pairs(&self) -> Vec<Pair> {
        let places = Place::all();
        let mut v = Vec::new();
        for (i, x) in places.iter().enumerate() {
            for y in &places[i..] {
                if let (Some(a), Some(b)) = (self.host(*x, false), self.host(*y, true)) {
                    v.push(Pair {
                        name: format!("{} -> {}", x.name(), y.name()),
                        a,
                        b,
                        expect: expected(*x, *y),
                    });
                }
            }
        }
        v.push(Pair {
            name: "same router (no hairpin)".into(),
            a: self.lan.0.clone(),
            b: self.lan.1.clone(),
            expect: SAME_ROUTER,
        });
        v
    }

    /// The pair from `x` to `y`.
    pub fn pair(&self, x: Place, y: Place) -> Option<Pair> {
        Some(Pair {
            name: format!("{} -> {}", x.name(), y.name()),
            a: self.host(x, false)?,
            b: self.host(y, true)?,
            expect: expected(x, y),
        })
    }
}

/// One try: `parley listen --id <b>` on `pair.b`, then `parley send` from
/// `pair.a`, giving up after `limit`. `n` makes the ids unique.
pub fn try_pair(pair: &Pair, n: u32, limit: Duration) -> Result<Outcome, String> {
    let (ida, idb) = (format!("a{n}"), format!("b{n}"));
    let text = format!("hello-{n}");
    let debug = std::env::var_os("NATLAB_DEBUG").is_some();
    // Each side keeps the keys it learns in a file of this try's own: a
    // shared one would fill up (256 peers) over a long matrix.
    let dir = std::env::temp_dir().join(format!("natlab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let kpa = dir.join(format!("known-a{n}"));
    let kpb = dir.join(format!("known-b{n}"));
    let (kpa, kpb) = (kpa.to_string_lossy(), kpb.to_string_lossy());
    let _ = std::fs::remove_file(&*kpa);
    let _ = std::fs::remove_file(&*kpb);
    let mut listen = parley::client(
        &pair.b,
        &["--known-peers", &kpb, "--id", &idb, "listen", "--json"],
    )
    .map_err(|e| e.to_string())?;
    if debug {
        listen.env("PARLEY_TRACE", "1");
    }
    let listener = Running::spawn(&mut listen).map_err(|e| format!("parley listen: {e}"))?;
    // Behind the lossy router, registering can take a while.
    listener
        .wait_for("listening as", Duration::from_secs(20))
        .map_err(|e| format!("{}: the listener did not register: {e}", pair.name))?;
    let secs = limit.as_secs().max(1).to_string();
    let t0 = Instant::now();
    let mut send = parley::client(
        &pair.a,
        &[
            "--known-peers",
            &kpa,
            "--id",
            &ida,
            "--timeout",
            &secs,
            "send",
            "--json",
            "--to",
            &idb,
            &text,
        ],
    )
    .map_err(|e| e.to_string())?;
    if debug {
        send.env("PARLEY_TRACE", "1");
    }
    let send = send.output().map_err(|e| format!("parley send: {e}"))?;
    // The message may still be on its way to the listener's stdout; and a
    // copy shown twice would show within this window too.
    let mut got = None;
    let mut shown = 0;
    let mut trace = Vec::new();
    let until = Instant::now() + Duration::from_millis(500);
    while let Some(line) = listener.next_line(until) {
        if !line.stdout {
            trace.push(line.text);
            continue;
        }
        if line.text.contains(&text) {
            shown += 1;
            got.get_or_insert((line.at, line.text.contains("\"seed\":true")));
        }
    }
    let stdout = String::from_utf8_lossy(&send.stdout);
    let reported = ["lan", "direct", "relayed"]
        .into_iter()
        .find(|p| stdout.contains(&format!("\"path\":\"{p}\"")));
    drop(listener);
    let _ = std::fs::remove_file(&*kpa);
    let _ = std::fs::remove_file(&*kpb);
    let path = match (got, reported) {
        (None, _) => "none",
        (Some((_, true)), _) => "seed-fallback",
        _ if shown > 1 => "duplicated",
        (Some((_, false)), Some(p)) if send.status.success() => p,
        // Shown as chat, but the sender never saw the acknowledgement.
        (Some((_, false)), _) => "one-way",
    };
    if debug && !matches!(path, "lan" | "direct" | "relayed") {
        eprintln!(
            "{} try {n}: {path} after {} ms: parley send said {:?}\n--- sender:\n{}\n--- listener:\n{}",
            pair.name,
            t0.elapsed().as_millis(),
            stdout,
            String::from_utf8_lossy(&send.stderr),
            trace.join("\n")
        );
    }
    Ok(Outcome {
        path,
        time: got.map(|(at, _)| at.duration_since(t0)),
    })
}

/// A row of the matrix: the pair, how many tries delivered, the paths
/// seen (with how many tries took each, where they differ) and the
/// median time of the delivered ones.
pub fn row(name: &str, outcomes: &[Outcome]) -> String {
    let ok = outcomes.iter().filter(|o| o.ok()).count();
    let mut kinds: Vec<&str> = outcomes.iter().map(|o| o.path).collect();
    kinds.sort_unstable();
    kinds.dedup();
    // How many tries took each path, where they differed.
    let paths: Vec<String> = kinds
        .iter()
        .map(|k| match outcomes.iter().filter(|o| o.path == *k).count() {
            n if n == outcomes.len() => k.to_string(),
            n => format!("{k} {n}"),
        })
        .collect();
    let mut times: Vec<Duration> = outcomes
        .iter()
        .filter(|o| o.ok())
        .filter_map(|o| o.time)
        .collect();
    times.sort();
    let median = times
        .get(times.len() / 2)
        .map_or("-".to_string(), |t| format!("{} ms", t.as_millis()));
    format!(
        "| {name} | {ok}/{} | {} | {median} |",
        outcomes.len(),
        paths.join(", ")
    )
}
