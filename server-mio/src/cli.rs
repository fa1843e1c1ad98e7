//! Command-line options.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use proto_core::limit::NetLimits;
use proto_core::server::{Config, Layout};
use proto_core::wire::Token;

use cli_args::{opt, set, within};

/// Smallest and largest table the server accepts.
pub const MIN_CAPACITY: usize = 1024;
/// See [`MIN_CAPACITY`].
pub const MAX_CAPACITY: usize = 1 << 22;
/// Table size when `--capacity` is not given.
pub const DEFAULT_CAPACITY: usize = 65_536;
/// The environment variable that may hold the admin token: unlike the
/// command line, the environment of a process is not readable by every
/// local user.
pub const ADMIN_TOKEN_ENV: &str = "PARLEY_ADMIN_TOKEN";

/// Everything the server was asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    /// UDP address to serve on.
    pub bind: SocketAddr,
    /// Registrations the table holds.
    pub capacity: usize,
    /// The protocol core's settings.
    pub config: Config,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: String,
    /// Where to serve Prometheus metrics over HTTP, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Receive and send on one socket, even where replies could leave
    /// from a socket of their own (see [`crate::sockets`]).
    pub one_socket: bool,
    /// Where the table is saved on stop and loaded from on start.
    pub state: Option<std::path::PathBuf>,
    /// A second UDP port on the same address that answers STUN only.
    pub stun_port2: Option<u16>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bind: SocketAddr::from(([127, 0, 0, 1], 9999)),
            capacity: DEFAULT_CAPACITY,
            config: Config::default(),
            log_level: "info".into(),
            metrics: None,
            one_socket: false,
            state: None,
            stun_port2: None,
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Run the server.
    Run(Box<Options>),
    /// Print this and exit successfully (`--help`, `--version`).
    Exit(String),
}

pub use cli_args::CliError;

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The memory a table of `capacity` takes, as `--help` states it.
pub fn table_cost(capacity: usize) -> usize {
    Layout::for_capacity(capacity).bytes()
}

/// The `--help` text.
pub fn help() -> String {
    let d = Config::default();
    let net = NetLimits::for_capacity(DEFAULT_CAPACITY, d.quota_per_source);
    let costs: Vec<String> = [1024, 65_536, 1 << 20]
        .iter()
        .map(|&c| format!("{c} -> {}", mib(table_cost(c))))
        .collect();
    format!(
        "parley-server {version}: a UDP rendezvous server for peer-to-peer chat.

Keeps a table of online ids (id -> the address it sees them at), answers
lookups, introduces peers for hole punching and tells subscribers who comes
and goes. Speaks the seed protocol (ID/Peer/Quit/ID2) and Parley's extended
protocol (docs/PROTOCOL.md). One thread; all memory is taken at start.

USAGE:
    parley-server [OPTIONS]

OPTIONS:
    --bind ADDR               UDP address to serve on, IPv4 or IPv6 [default: 127.0.0.1:9999]
    --capacity N              ids the table holds, {min} to {max} [default: {cap}]
                              memory for the tables: {costs}
                              (about {per} bytes per id)
    --lease SECS              lease granted when a client asks for none [default: {lease}]
    --lease-max SECS          longest lease granted [default: {lease_max}]
    --seed-lease SECS         lease of a seed-protocol (ID) registration [default: {seed_lease}]
    --presence-interval-ms MS each subscriber gets at most one update per interval [default: {interval}]
    --fanout-per-sec N        presence datagrams per second, all subscribers together [default: {fanout}]
    --quota N                 ids one source may hold (per IPv4 address, per IPv6 /64) [default: {quota}]
                              networks have quotas too, sized from the capacity so that no
                              one network fills the table: an IPv4 /24 and an IPv6 /48 may
                              hold capacity/8 ids, an IPv6 /56 capacity/32, none less than
                              --quota (the default table: {net24}, {net48} and {net56})
    --rate N                  requests per second per source, for requests that echo a valid
                              cookie and, separately, for all others [default: {rate}]
    --burst N                 requests per source in a burst [default: {burst}]
    --no-limits               turn quotas and rate limits off (benchmarks, load tests on one host)
    --strict                  refuse the seed's unauthenticated verbs (for internet-facing servers;
                              without it, a bind to other than loopback logs a warning)
    --stun-per-sec N          STUN Binding answers per second, all sources together;
                              0 turns STUN off [default: {stun}]
    --relay-bytes-per-sec N   octets per second all relay sessions together forward;
                              0 turns relaying off [default: {relay}]
    --stun-port2 PORT         also answer STUN (only) on PORT of the --bind address, so that
                              clients can tell whether their NAT maps per destination
    --admin-token-file PATH   read the admin token (16 hex digits) that unlocks STATS from
                              other than loopback from PATH; or set {env}
    --admin-token HEX         the admin token on the command line (every local user can read it)
    --metrics ADDR            serve Prometheus metrics over HTTP on this TCP address
    --one-socket              receive and reply on one UDP socket (on Linux replies otherwise
                              leave from a second socket on the same address, which spares
                              the receiving socket an epoll wake-up per reply)
    --state FILE              on SIGINT or SIGTERM save the whole table (ids, addresses, leases,
                              owners, keys, subscriptions, the secret behind cookies and tokens)
                              to FILE, and load it on start, so a restart loses nobody; a file
                              that cannot be read as a Parley state file stops the server
    --log-level LEVEL         error, warn, info, debug or trace [default: info]
    -h, --help                print this help
    -V, --version             print the version

Send SIGINT or SIGTERM to stop; the server logs its counters (and with --state saves
the table) and exits 0.
",
        version = env!("CARGO_PKG_VERSION"),
        min = MIN_CAPACITY,
        max = MAX_CAPACITY,
        cap = DEFAULT_CAPACITY,
        costs = costs.join(", "),
        per = table_cost(1 << 20) >> 20,
        lease = d.lease_default,
        lease_max = d.lease_max,
        seed_lease = d.seed_lease,
        interval = d.presence_interval.0,
        fanout = d.fanout_per_sec,
        quota = d.quota_per_source,
        net24 = net.v4_24,
        net48 = net.v6_48,
        net56 = net.v6_56,
        env = ADMIN_TOKEN_ENV,
        rate = d.rate_per_sec,
        burst = d.rate_burst,
        stun = d.stun_per_sec,
        relay = d.relay_bytes_per_sec,
    )
}

/// Parse the command line (without the program name), reading the
/// process's environment for [`ADMIN_TOKEN_ENV`].
pub fn parse(raw: Vec<OsString>) -> Result<Parsed, CliError> {
    parse_with_env(raw, |name| std::env::var(name).ok())
}

/// [`parse`], with `env` for the environment.
pub fn parse_with_env(
    raw: Vec<OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Parsed, CliError> {
    let mut args = pico_args::Arguments::from_vec(raw);
    let version = env!("CARGO_PKG_VERSION");
    if let Some(text) = cli_args::help_or_version(&mut args, "parley-server", version, help) {
        return Ok(Parsed::Exit(text));
    }
    let mut o = Options::default();
    let c = &mut o.config;
    set(&mut args, "--bind", &mut o.bind)?;
    if let Some(v) = opt(&mut args, "--capacity")? {
        o.capacity = within("--capacity", v, MIN_CAPACITY..=MAX_CAPACITY)?;
    }
    set(&mut args, "--lease", &mut c.lease_default)?;
    set(&mut args, "--lease-max", &mut c.lease_max)?;
    set(&mut args, "--seed-lease", &mut c.seed_lease)?;
    set(
        &mut args,
        "--presence-interval-ms",
        &mut c.presence_interval.0,
    )?;
    set(&mut args, "--fanout-per-sec", &mut c.fanout_per_sec)?;
    set(&mut args, "--quota", &mut c.quota_per_source)?;
    set(&mut args, "--rate", &mut c.rate_per_sec)?;
    set(&mut args, "--burst", &mut c.rate_burst)?;
    if args.contains("--no-limits") {
        c.limits = false;
    }
    if args.contains("--strict") {
        c.strict = true;
    }
    o.one_socket = args.contains("--one-socket");
    set(&mut args, "--stun-per-sec", &mut c.stun_per_sec)?;
    o.stun_port2 = opt(&mut args, "--stun-port2")?;
    set(
        &mut args,
        "--relay-bytes-per-sec",
        &mut c.relay_bytes_per_sec,
    )?;
    let on_line = opt::<String>(&mut args, "--admin-token")?;
    let file = opt::<PathBuf>(&mut args, "--admin-token-file")?;
    c.admin_token = admin_token(on_line, file, env(ADMIN_TOKEN_ENV))?;
    if c.lease_default > c.lease_max {
        c.lease_max = c
            .lease_default
            .min(proto_core::wire::request::MAX_LEASE_SECS);
    }
    if c.lease_default < c.lease_min {
        c.lease_min = c.lease_default.max(1);
    }
    o.metrics = opt(&mut args, "--metrics")?;
    o.state = opt::<std::path::PathBuf>(&mut args, "--state")?;
    if let Some(v) = opt::<String>(&mut args, "--log-level")? {
        if !["error", "warn", "info", "debug", "trace", "off"].contains(&v.as_str()) {
            return Err(CliError(format!(
                "--log-level: '{v}' is not one of error, warn, info, debug, trace, off"
            )));
        }
        o.log_level = v;
    }
    cli_args::finish(args)?;
    Ok(Parsed::Run(Box::new(o)))
}

/// The admin token from the command line, a file, or the environment, in
/// that order; naming it twice on the command line is an error.
fn admin_token(
    on_line: Option<String>,
    file: Option<PathBuf>,
    env: Option<String>,
) -> Result<Option<Token>, CliError> {
    let (text, from) = match (on_line, file, env) {
        (Some(_), Some(_), _) => {
            return Err(CliError(
                "--admin-token and --admin-token-file: give one, not both".into(),
            ));
        }
        (Some(t), None, _) => (t, "--admin-token".to_string()),
        (None, Some(path), _) => {
            refuse_shared_secret_file(&path)?;
            let text = std::fs::read_to_string(&path).map_err(|e| {
                CliError(format!(
                    "--admin-token-file: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            (
                text.trim().to_string(),
                format!("--admin-token-file {}", path.display()),
            )
        }
        (None, None, Some(t)) => (t.trim().to_string(), ADMIN_TOKEN_ENV.to_string()),
        (None, None, None) => return Ok(None),
    };
    Token::parse(text.as_bytes())
        .map(Some)
        .map_err(|_| CliError(format!("{from}: must be exactly 16 lowercase hex digits")))
}

/// A token file that others on the host can read gives the token away as
/// surely as a command line would, so it is refused, as SSH refuses keys.
fn refuse_shared_secret_file(path: &std::path::Path) -> Result<(), CliError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(CliError(format!(
                    "--admin-token-file: {} can be read by others (mode {mode:o}): run `chmod 600 {}`",
                    path.display(),
                    path.display()
                )));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The warning a server bound to `bound` should log, if any: one that
/// answers the seed's unauthenticated verbs from beyond this host.
pub fn exposure_warning(bound: SocketAddr, strict: bool) -> Option<String> {
    if strict || bound.ip().to_canonical().is_loopback() {
        return None;
    }
    Some(format!(
        "serving {bound} without --strict: the seed protocol cannot authenticate anyone, so \
         anyone who can reach this address may register ids for spoofed addresses and make \
         this server send lists and replies to them; on a network you do not trust, run \
         with --strict"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, CliError> {
        match parse(args.iter().map(OsString::from).collect())? {
            Parsed::Run(o) => Ok(*o),
            Parsed::Exit(_) => panic!("expected options"),
        }
    }

    #[test]
    fn defaults_match_the_seed_server() {
        let o = run(&[]).unwrap();
        assert_eq!(o.bind, "127.0.0.1:9999".parse().unwrap());
        assert!(o.config.limits && !o.config.strict && !o.one_socket);
    }

    #[test]
    fn flags_are_read() {
        let o = run(&[
            "--bind",
            "[::1]:7000",
            "--capacity",
            "2048",
            "--no-limits",
            "--strict",
            "--one-socket",
            "--lease=60",
            "--admin-token",
            "00000000000000ff",
            "--state",
            "/var/lib/parley/state",
            "--stun-per-sec",
            "7",
            "--stun-port2",
            "3479",
        ])
        .unwrap();
        assert_eq!(o.bind, "[::1]:7000".parse().unwrap());
        assert_eq!(o.capacity, 2048);
        assert!(!o.config.limits && o.config.strict && o.one_socket);
        assert_eq!(o.config.lease_default, 60);
        assert_eq!(o.config.admin_token, Some(Token(0xff)));
        assert_eq!(o.state, Some("/var/lib/parley/state".into()));
        assert_eq!((o.config.stun_per_sec, o.stun_port2), (7, Some(3479)));
    }

    #[test]
    fn bad_input_reads_as_a_sentence() {
        let e = run(&["--capacity", "12"]).unwrap_err();
        assert!(e.to_string().contains("between 1024"), "{e}");
        let e = run(&["--bind", "nowhere"]).unwrap_err();
        assert!(e.to_string().starts_with("--bind: "), "{e}");
        let e = run(&["--frobnicate"]).unwrap_err();
        assert!(e.to_string().contains("--frobnicate"), "{e}");
        let e = run(&["--admin-token", "xyz"]).unwrap_err();
        assert!(e.to_string().contains("16 lowercase hex"), "{e}");
    }

    fn run_env(args: &[&str], env: Option<&str>) -> Result<Options, CliError> {
        let env = env.map(str::to_string);
        let parsed = parse_with_env(args.iter().map(OsString::from).collect(), |k| {
            assert_eq!(k, ADMIN_TOKEN_ENV);
            env.clone()
        })?;
        match parsed {
            Parsed::Run(o) => Ok(*o),
            Parsed::Exit(_) => panic!("expected options"),
        }
    }

    #[test]
    fn the_admin_token_comes_from_a_file_or_the_environment() {
        let o = run_env(&[], Some("00000000000000ab")).unwrap();
        assert_eq!(o.config.admin_token, Some(Token(0xab)));
        let o = run_env(&[], None).unwrap();
        assert_eq!(o.config.admin_token, None);
        let dir = std::env::temp_dir().join(format!("parley-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "00000000000000cd\n").unwrap();
        let p = path.to_str().unwrap();
        // Readable by others: refused, whatever it holds.
        let mode =
            |m| std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(m));
        mode(0o644).unwrap();
        let e = run_env(&["--admin-token-file", p], None).unwrap_err();
        assert!(
            e.to_string().contains("can be read by others (mode 644)"),
            "{e}"
        );
        mode(0o600).unwrap();
        // The file wins over the environment, the command line over both.
        let o = run_env(&["--admin-token-file", p], Some("00000000000000ab")).unwrap();
        assert_eq!(o.config.admin_token, Some(Token(0xcd)));
        let o = run_env(
            &["--admin-token", "00000000000000ef"],
            Some("00000000000000ab"),
        )
        .unwrap();
        assert_eq!(o.config.admin_token, Some(Token(0xef)));
        let e = run_env(
            &["--admin-token", "00000000000000ef", "--admin-token-file", p],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        std::fs::write(&path, "secret").unwrap();
        let e = run_env(&["--admin-token-file", p], None).unwrap_err();
        assert!(e.to_string().starts_with("--admin-token-file "), "{e}");
        let e = run_env(&["--admin-token-file", "/nonexistent/parley"], None).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
        let e = run_env(&[], Some("nope")).unwrap_err();
        assert!(e.to_string().starts_with(ADMIN_TOKEN_ENV), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bind_beyond_loopback_without_strict_is_warned_about() {
        for quiet in [
            "127.0.0.1:9999",
            "127.1.2.3:1",
            "[::1]:9999",
            "[::ffff:127.0.0.1]:9999",
        ] {
            assert_eq!(
                exposure_warning(quiet.parse().unwrap(), false),
                None,
                "{quiet}"
            );
        }
        for loud in [
            "0.0.0.0:9999",
            "192.0.2.1:9999",
            "[::]:9999",
            "[::ffff:192.0.2.1]:1",
        ] {
            let w = exposure_warning(loud.parse().unwrap(), false).expect(loud);
            assert!(w.contains("--strict") && w.contains("spoofed"), "{w}");
            assert_eq!(exposure_warning(loud.parse().unwrap(), true), None);
        }
    }

    #[test]
    fn help_states_the_memory_cost() {
        let h = help();
        assert!(h.contains("--capacity N"));
        assert!(h.contains(&mib(table_cost(1 << 20))));
    }
}
