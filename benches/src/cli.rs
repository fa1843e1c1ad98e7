//! Command-line options of `parley-loadgen`.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use cli_args::{check, finish, free, opt, set, within};

/// What the generator does in its measured phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Register fresh ids (the table grows); every acknowledged one is looked up afterwards.
    Register,
    /// Look up ids of the prefilled table.
    Lookup,
    /// Register/quit cycles of a fixed set of actors.
    Churn,
    /// Lookups, fresh registrations and churn in a stated ratio.
    Mixed,
    /// Like `mixed`, while `--subscribers` prefilled ids receive presence events.
    Presence,
    /// STUN Binding requests (RFC 8489), answered with the mapped address.
    Stun,
    /// Relay frames through a session whose two ends are each lane's socket.
    Relay,
}

impl Workload {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Register => "register",
            Workload::Lookup => "lookup",
            Workload::Churn => "churn",
            Workload::Mixed => "mixed",
            Workload::Presence => "presence",
            Workload::Stun => "stun",
            Workload::Relay => "relay",
        }
    }
}

/// Which protocol the requests use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// Parley's extended protocol (`HELLO`, `REG`, `LOOKUP`, `QUIT`, `SUB`).
    Ext,
    /// The seed's verbs (`ID`, `Peer`, `Quit`).
    Seed,
}

/// Relative weights of the three operations in `mixed` and `presence`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    /// Lookups of prefilled ids.
    pub lookup: u32,
    /// Registrations of fresh ids (kept).
    pub register: u32,
    /// Churn steps (register or quit of an actor).
    pub churn: u32,
}

impl Mix {
    fn parse(s: &str) -> Result<Mix, String> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 3 {
            return Err(format!(
                "'{s}' is not LOOKUP:REGISTER:CHURN (three whole numbers, e.g. 80:10:10)"
            ));
        }
        let n = |p: &str| {
            p.parse::<u32>()
                .map_err(|_| format!("'{p}' in '{s}' is not a whole number"))
        };
        let m = Mix {
            lookup: n(parts[0])?,
            register: n(parts[1])?,
            churn: n(parts[2])?,
        };
        if m.total() == 0 {
            return Err("the weights add up to zero".into());
        }
        Ok(m)
    }

    /// Sum of the weights.
    pub fn total(&self) -> u32 {
        self.lookup + self.register + self.churn
    }
}

/// Options of `parley-loadgen run`.
#[derive(Clone, Debug)]
pub struct RunOpts {
    /// The server (or echo server) to load; loopback only.
    pub target: SocketAddr,
    /// What to measure.
    pub workload: Workload,
    /// Which verbs.
    pub proto: Proto,
    /// Ids registered before the measured phase.
    pub table: u32,
    /// Prefilled ids that subscribe to presence before the measured phase.
    pub subscribers: u32,
    /// Operation weights for `mixed` and `presence`.
    pub mix: Mix,
    /// Sockets, each on its own loopback address.
    pub lanes: usize,
    /// Requests in flight per lane at most.
    pub window: usize,
    /// Offered load in requests per second (open loop); `None`: closed loop.
    pub rate: Option<u64>,
    /// Length of the measured phase.
    pub duration: Duration,
    /// Most requests in the measured phase.
    pub count: Option<u64>,
    /// A request unanswered this long is lost.
    pub timeout: Duration,
    /// Lease asked for in every `REG`, in seconds.
    pub lease: u32,
    /// Garbage datagrams per thousand requests.
    pub garbage_per_mille: u32,
    /// Churn actors look themselves up between `REG` and `QUIT`.
    pub check_churn: bool,
    /// Look up every acknowledged registration after the measured phase.
    pub verify: bool,
    /// The target is `parley-loadgen echo`: count replies, skip the table.
    pub echo: bool,
    /// Source address of the first lane.
    pub first_addr: Ipv4Addr,
    /// Prefix of every id (so runs against one server do not collide).
    pub prefix: String,
    /// Print the report as JSON.
    pub json: bool,
    /// No progress lines.
    pub quiet: bool,
    /// Random seed.
    pub seed: u64,
    /// Ask for a fresh cookie this often.
    pub cookie_refresh: Duration,
}

impl Default for RunOpts {
    fn default() -> Self {
        RunOpts {
            target: SocketAddr::from(([127, 0, 0, 1], 9999)),
            workload: Workload::Lookup,
            proto: Proto::Ext,
            table: 0,
            subscribers: 0,
            mix: Mix {
                lookup: 80,
                register: 10,
                churn: 10,
            },
            lanes: 8,
            window: 16,
            rate: None,
            duration: Duration::from_secs(5),
            count: None,
            timeout: Duration::from_millis(1000),
            lease: 3600,
            garbage_per_mille: 0,
            check_churn: false,
            verify: true,
            echo: false,
            first_addr: Ipv4Addr::new(127, 0, 1, 1),
            prefix: "lg".into(),
            json: false,
            quiet: false,
            seed: 1,
            cookie_refresh: Duration::from_secs(60),
        }
    }
}

/// What the command line asks for.
/// How to serve as the echo floor.
#[derive(Debug)]
pub struct EchoOpts {
    /// Where to listen.
    pub bind: SocketAddr,
    /// Stop after this long, if given.
    pub duration: Option<Duration>,
    /// Wait in epoll as parley-server does, rather than in `recvmmsg`.
    pub epoll: bool,
    /// Send with the don't-fragment bit, as parley-server does.
    pub df: bool,
}

#[derive(Debug)]
pub enum Command {
    /// Generate load.
    Run(Box<RunOpts>),
    /// Serve as the echo floor.
    Echo(EchoOpts),
    /// Print the server's counters.
    Stats {
        /// The server.
        target: SocketAddr,
        /// How long to wait for the answer.
        timeout: Duration,
    },
    /// Print the bytes `parley-server --capacity N` takes for its tables.
    TableCost(usize),
    /// Time `--state` saving and loading a full table of N ids.
    StateCost {
        /// Ids in the table.
        ids: usize,
        /// Where to write the file.
        dir: std::path::PathBuf,
    },
    /// Print this text and exit successfully.
    Exit(String),
}

pub use cli_args::CliError;

/// The `--help` text.
pub fn help() -> String {
    let d = RunOpts::default();
    format!(
        "parley-loadgen {version}: load generator and echo floor for parley-server.

USAGE:
    parley-loadgen [run] [OPTIONS]        generate load against a server on loopback
    parley-loadgen echo --bind ADDR [--duration SECS] [--epoll] [--df]
                                          send every datagram back (the floor);
                                          --epoll waits in epoll like parley-server,
                                          --df sends with don't-fragment as it does
    parley-loadgen stats [--target ADDR]  print the server's STATS counters
    parley-loadgen table-cost N           bytes parley-server's tables take for --capacity N
    parley-loadgen state-cost N [--dir D] time parley-server --state saving and loading N ids
                                          (the file goes in D, default the temp dir, and is removed)

WORKLOADS (--workload):
    register   fresh ids into the table; afterwards every acknowledged id is looked up
    lookup     lookups of random ids of the prefilled table (--table N)
    churn      register/quit cycles of lanes x window actors
    mixed      lookup:register:churn in the --mix ratio [default 80:10:10]
    presence   mixed [default 90:0:10] while --subscribers prefilled ids get presence events
    stun       STUN Binding requests (RFC 8489), each answered with the sender's address
    relay      relay frames of 74 octets through a session per lane whose two ends are the
               lane itself (two ids registered from its socket): each comes back forwarded

RUN OPTIONS:
    --target ADDR         server address, loopback only [default: {target}]
    --workload W          register, lookup, churn, mixed, presence, stun or relay [default: lookup]
    --proto P             ext (extended protocol) or seed (ID/Peer/Quit) [default: ext]
    --table N             ids registered before the measured phase [default: 0]
    --subscribers N       prefilled ids subscribed to presence (presence) [default: 0]
    --mix L:R:C           weights of lookup, register, churn (mixed, presence)
    --lanes N             sockets, each on its own address 127.x.y.z [default: {lanes}]
    --window N            requests in flight per lane (closed loop) [default: {window}]
    --rate N              offered requests per second, all lanes (open loop)
    --duration SECS       length of the measured phase [default: 5]
    --count N             most requests in the measured phase
    --timeout-ms MS       an unanswered request is lost after this [default: 1000]
    --lease SECS          lease asked for in REG [default: {lease}]
    --garbage PERMILLE    garbage datagrams per 1000 requests [default: 0]
    --check-churn         churn actors look themselves up between REG and QUIT
    --no-verify           skip looking up every acknowledged registration afterwards
    --echo                the target is `parley-loadgen echo`: count replies only
    --first-addr IP       source address of the first lane [default: {first}]
    --prefix P            prefix of every id [default: {prefix}]
    --seed N              random seed [default: 1]
    --json                print the report as JSON on stdout
    --quiet               no progress lines on stderr
    -h, --help            print this help

The seed protocol has no reply to ID and Quit: over --proto seed, register and
churn need --rate, and a registration counts as acknowledged once a later Peer
finds it. mixed and presence need the extended protocol.

Exit status: 0 if the run completed and no acknowledged registration was lost,
1 on errors, 2 on a bad command line, 3 if an acknowledged registration was
not found afterwards.
",
        version = env!("CARGO_PKG_VERSION"),
        target = d.target,
        lanes = d.lanes,
        window = d.window,
        lease = d.lease,
        first = d.first_addr,
        prefix = d.prefix,
    )
}

fn secs(name: &str, v: f64) -> Result<Duration, CliError> {
    let ok = v.is_finite() && v > 0.0 && v <= 86_400.0;
    check(name, v, ok, "more than 0 and at most 86400 seconds").map(Duration::from_secs_f64)
}

/// Refuse anything but loopback: the generator floods its target.
pub fn check_loopback(a: SocketAddr) -> Result<SocketAddr, CliError> {
    if !a.ip().is_loopback() {
        return Err(CliError(format!(
            "--target: {a} is not a loopback address; parley-loadgen only loads 127.0.0.0/8 or ::1"
        )));
    }
    Ok(a)
}

/// Parse the command line (without the program name).
pub fn parse(raw: Vec<OsString>) -> Result<Command, CliError> {
    let mut raw = raw;
    let sub = match raw.first().and_then(|a| a.to_str()) {
        Some(s @ ("run" | "echo" | "stats" | "table-cost" | "state-cost")) => {
            let s = s.to_string();
            raw.remove(0);
            s
        }
        _ => "run".to_string(),
    };
    let mut args = pico_args::Arguments::from_vec(raw);
    let version = env!("CARGO_PKG_VERSION");
    if let Some(text) = cli_args::help_or_version(&mut args, "parley-loadgen", version, help) {
        return Ok(Command::Exit(text));
    }
    match sub.as_str() {
        "echo" => {
            let bind: SocketAddr = opt(&mut args, "--bind")?
                .ok_or_else(|| CliError("echo: --bind ADDR is required".into()))?;
            if !bind.ip().is_loopback() {
                return Err(CliError(format!(
                    "--bind: {bind} is not a loopback address"
                )));
            }
            let duration = match opt::<f64>(&mut args, "--duration")? {
                Some(v) => Some(secs("--duration", v)?),
                None => None,
            };
            let epoll = args.contains("--epoll");
            let df = args.contains("--df");
            finish(args)?;
            Ok(Command::Echo(EchoOpts {
                bind,
                duration,
                epoll,
                df,
            }))
        }
        "stats" => {
            let target =
                check_loopback(opt(&mut args, "--target")?.unwrap_or(RunOpts::default().target))?;
            let timeout = Duration::from_millis(opt(&mut args, "--timeout-ms")?.unwrap_or(1000));
            finish(args)?;
            Ok(Command::Stats { target, timeout })
        }
        "table-cost" => {
            let n: usize = free(&mut args, "table-cost N")?;
            finish(args)?;
            Ok(Command::TableCost(n))
        }
        "state-cost" => {
            let ids: usize = free(&mut args, "state-cost N")?;
            let dir = opt(&mut args, "--dir")?.unwrap_or_else(std::env::temp_dir);
            finish(args)?;
            Ok(Command::StateCost { ids, dir })
        }
        _ => parse_run(args).map(|o| Command::Run(Box::new(o))),
    }
}

fn parse_run(mut args: pico_args::Arguments) -> Result<RunOpts, CliError> {
    let mut o = RunOpts::default();
    set(&mut args, "--target", &mut o.target)?;
    o.target = check_loopback(o.target)?;
    if let Some(w) = opt::<String>(&mut args, "--workload")? {
        o.workload = match w.as_str() {
            "register" => Workload::Register,
            "lookup" => Workload::Lookup,
            "churn" => Workload::Churn,
            "mixed" => Workload::Mixed,
            "presence" => Workload::Presence,
            "stun" => Workload::Stun,
            "relay" => Workload::Relay,
            _ => {
                return Err(CliError(format!(
                    "--workload: '{w}' is not one of register, lookup, churn, mixed, presence, stun, relay"
                )));
            }
        };
    }
    if o.workload == Workload::Presence {
        o.mix = Mix {
            lookup: 90,
            register: 0,
            churn: 10,
        };
    }
    if let Some(p) = opt::<String>(&mut args, "--proto")? {
        o.proto = match p.as_str() {
            "ext" => Proto::Ext,
            "seed" => Proto::Seed,
            _ => return Err(CliError(format!("--proto: '{p}' is not ext or seed"))),
        };
    }
    set(&mut args, "--table", &mut o.table)?;
    set(&mut args, "--subscribers", &mut o.subscribers)?;
    if let Some(v) = opt::<String>(&mut args, "--mix")? {
        o.mix = Mix::parse(&v).map_err(|e| CliError(format!("--mix: {e}")))?;
    }
    set(&mut args, "--lanes", &mut o.lanes)?;
    set(&mut args, "--window", &mut o.window)?;
    o.rate = opt(&mut args, "--rate")?;
    if let Some(v) = opt::<f64>(&mut args, "--duration")? {
        o.duration = secs("--duration", v)?;
    }
    o.count = opt(&mut args, "--count")?;
    if let Some(v) = opt(&mut args, "--timeout-ms")? {
        o.timeout = Duration::from_millis(within("--timeout-ms", v, 1..=60_000)?);
    }
    set(&mut args, "--lease", &mut o.lease)?;
    set(&mut args, "--garbage", &mut o.garbage_per_mille)?;
    o.check_churn = args.contains("--check-churn");
    o.verify = !args.contains("--no-verify");
    o.echo = args.contains("--echo");
    set(&mut args, "--first-addr", &mut o.first_addr)?;
    set(&mut args, "--prefix", &mut o.prefix)?;
    set(&mut args, "--seed", &mut o.seed)?;
    o.json = args.contains("--json");
    o.quiet = args.contains("--quiet");
    finish(args)?;
    validate(&o)?;
    Ok(o)
}

fn validate(o: &RunOpts) -> Result<(), CliError> {
    let err = |s: String| Err(CliError(s));
    within("--lanes", o.lanes, 1..=1024)?;
    within("--window", o.window, 1..=4096)?;
    if o.first_addr.octets()[0] != 127 {
        return err(format!(
            "--first-addr: {} is not in 127.0.0.0/8",
            o.first_addr
        ));
    }
    if o.rate == Some(0) {
        return err("--rate: must be at least 1".into());
    }
    if o.count == Some(0) {
        return err("--count: must be at least 1".into());
    }
    if o.garbage_per_mille > 1000 {
        return err(format!(
            "--garbage: at most 1000 per 1000 requests, not {}",
            o.garbage_per_mille
        ));
    }
    within(
        "--lease",
        o.lease,
        1..=proto_core::wire::request::MAX_LEASE_SECS,
    )?;
    if o.prefix.len() > 16 || !o.prefix.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return err(format!(
            "--prefix: '{}' must be at most 16 letters or digits",
            o.prefix
        ));
    }
    if o.subscribers > o.table {
        return err(format!(
            "--subscribers: {} subscribers need at least as many prefilled ids (--table), not {}",
            o.subscribers, o.table
        ));
    }
    let uses_lookup = match o.workload {
        Workload::Lookup => true,
        Workload::Mixed | Workload::Presence => o.mix.lookup > 0,
        _ => false,
    };
    if uses_lookup && o.table == 0 {
        return err(format!(
            "--table: the {} workload looks up prefilled ids; give --table N",
            o.workload.name()
        ));
    }
    if o.proto == Proto::Seed {
        match o.workload {
            Workload::Mixed | Workload::Presence => {
                return err(format!(
                    "--proto seed: the {} workload needs the extended protocol",
                    o.workload.name()
                ));
            }
            Workload::Register | Workload::Churn if o.rate.is_none() => {
                return err(format!(
                    "--proto seed: the seed has no reply to ID or Quit, so {} needs --rate",
                    o.workload.name()
                ));
            }
            _ => {}
        }
        if o.garbage_per_mille > 0 {
            return err("--garbage: only with --proto ext".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<RunOpts, CliError> {
        match parse(args.iter().map(OsString::from).collect())? {
            Command::Run(o) => Ok(*o),
            other => panic!("expected run, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_a_closed_loop_lookup_on_loopback() {
        let o = run(&["--table", "10"]).unwrap();
        assert_eq!(o.workload, Workload::Lookup);
        assert_eq!(o.target, "127.0.0.1:9999".parse().unwrap());
        assert_eq!((o.lanes, o.window, o.rate), (8, 16, None));
        assert!(o.verify && !o.echo && !o.json);
    }

    #[test]
    fn options_are_read() {
        let o = run(&[
            "run",
            "--target=127.0.0.1:7000",
            "--workload",
            "mixed",
            "--mix",
            "70:20:10",
            "--table",
            "1000",
            "--lanes",
            "4",
            "--window",
            "32",
            "--rate",
            "5000",
            "--duration",
            "0.5",
            "--count",
            "99",
            "--garbage",
            "20",
            "--no-verify",
            "--json",
        ])
        .unwrap();
        assert_eq!(o.target.port(), 7000);
        assert_eq!(o.workload, Workload::Mixed);
        assert_eq!(
            o.mix,
            Mix {
                lookup: 70,
                register: 20,
                churn: 10
            }
        );
        assert_eq!(
            (o.lanes, o.window, o.rate, o.count),
            (4, 32, Some(5000), Some(99))
        );
        assert_eq!(o.duration, Duration::from_millis(500));
        assert_eq!(o.garbage_per_mille, 20);
        assert!(!o.verify && o.json);
    }

    #[test]
    fn presence_has_its_own_default_mix() {
        let o = run(&[
            "--workload",
            "presence",
            "--table",
            "5",
            "--subscribers",
            "5",
        ])
        .unwrap();
        assert_eq!((o.mix.lookup, o.mix.register, o.mix.churn), (90, 0, 10));
    }

    #[test]
    fn non_loopback_targets_are_refused() {
        for t in [
            "10.0.0.1:9999",
            "192.0.2.1:1",
            "[2001:db8::1]:5",
            "0.0.0.0:9",
        ] {
            let e = run(&["--target", t, "--table", "1"]).unwrap_err();
            assert!(e.0.contains("not a loopback"), "{t}: {e}");
        }
        assert!(run(&["--target", "127.9.8.7:1", "--table", "1"]).is_ok());
        assert!(run(&["--target", "[::1]:1", "--table", "1"]).is_ok());
        let e = parse(vec!["stats".into(), "--target".into(), "8.8.8.8:53".into()]).unwrap_err();
        assert!(e.0.contains("not a loopback"), "{e}");
        let e = parse(vec!["echo".into(), "--bind".into(), "0.0.0.0:5".into()]).unwrap_err();
        assert!(e.0.contains("not a loopback"), "{e}");
    }

    #[test]
    fn bad_input_reads_as_a_sentence() {
        let cases: &[(&[&str], &str)] = &[
            (&["--workload", "fly"], "not one of"),
            (&["--mix", "1:2"], "LOOKUP:REGISTER:CHURN"),
            (&["--mix", "0:0:0"], "zero"),
            (&["--lanes", "0"], "between 1 and 1024"),
            (&["--duration", "-1"], "more than 0"),
            (&["--workload", "lookup"], "give --table"),
            (&["--table", "5", "--subscribers", "6"], "at least as many"),
            (
                &["--proto", "seed", "--workload", "register"],
                "needs --rate",
            ),
            (
                &["--proto", "seed", "--workload", "mixed", "--table", "1"],
                "extended",
            ),
            (&["--prefix", "a b", "--table", "1"], "letters or digits"),
            (&["--first-addr", "10.0.0.1", "--table", "1"], "127.0.0.0/8"),
            (&["--frobnicate"], "--frobnicate"),
        ];
        for (args, needle) in cases {
            let e = run(args).unwrap_err();
            assert!(e.0.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn subcommands_are_recognised() {
        match parse(vec!["echo".into(), "--bind".into(), "127.0.0.1:0".into()]).unwrap() {
            Command::Echo(o) => {
                assert_eq!(o.bind.port(), 0);
                assert_eq!((o.duration, o.epoll, o.df), (None, false, false));
            }
            other => panic!("{other:?}"),
        }
        let args = ["echo", "--bind", "127.0.0.1:0", "--epoll", "--df"];
        match parse(args.iter().map(|a| a.into()).collect()).unwrap() {
            Command::Echo(o) => assert_eq!((o.epoll, o.df), (true, true)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(vec!["table-cost".into(), "1024".into()]).unwrap(),
            Command::TableCost(1024)
        ));
        assert!(matches!(
            parse(vec!["state-cost".into(), "1000".into(), "--dir".into(), "/x".into()]).unwrap(),
            Command::StateCost { ids: 1000, dir } if dir == std::path::Path::new("/x")
        ));
        assert!(matches!(
            parse(vec!["stats".into()]).unwrap(),
            Command::Stats { .. }
        ));
        match parse(vec!["--help".into()]).unwrap() {
            Command::Exit(h) => assert!(h.contains("--workload W")),
            other => panic!("{other:?}"),
        }
    }
}
