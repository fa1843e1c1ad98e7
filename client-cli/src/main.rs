//! `parley`: Parley's chat client.
//!
//! The protocol (registration, keepalives, introductions, reliable chat)
//! is `proto_core::client`; this binary adds the socket, the clock and the
//! terminal: an interactive chat and scriptable subcommands.

/// The chat's slash commands, one per line, for `--help` and the chat's
/// `/help` (defined before `mod chat` so that it can use it too).
macro_rules! chat_commands {
    () => {
        "  /msg ID TEXT   send TEXT to ID; ID becomes the current conversation
                 (until the server says nobody by that id is online)
  /to ID         make ID the current conversation: plain lines go to it
  /who           who is online
  /lookup ID     where the server sees ID
  /path ID       how chat with ID travels: LAN, direct or relayed
  /ping          round trip to the server
  /whoami        your id and your key's fingerprint
  /verify ID     the safety number of your key and ID's: read it to ID by
                 voice; if the digits differ, someone is in between
  /accept ID     after a warning that ID's key changed: take the new key
                 (only once ID confirmed it) and send what was held
  /help          this list
  /quit          sign off and leave (Ctrl-D too)"
    };
}

mod chat;
mod files;
mod identity;
mod known_peers;
mod netcheck;
mod online;
mod script;
mod session;
mod show;

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cli_args::{CliError, check, opt, within};
use proto_core::wire::{Id, IdBuf};

use identity::Identity;
use known_peers::KnownPeers;

const HELP: &str = concat!(
    "\
parley: peer-to-peer chat through a Parley rendezvous server

USAGE:
  parley [--server HOST:PORT] [--id NAME]           chat interactively
  parley send --id ME --to PEER [--seed] [--accept-new-key] [--json] TEXT...
                                                    send one message and wait for its acknowledgement
  parley listen --id ME [--json]                    print each incoming message as a line
  parley who                                        list who is online
  parley lookup ID                                  show where the server sees ID
  parley ping                                       round-trip time and the address the server sees
  parley whoami [--id ME]                           your key's fingerprint (the key is made if there is none)
  parley verify ID                                  the safety number of your key and ID's, to compare by voice
  parley netcheck [PORT2] [--json]                  what the NAT does (STUN to the server, and to its
                                                    --stun-port2 PORT2): public address, mapping, round trip

OPTIONS:
  -s, --server HOST:PORT   the rendezvous server (default 127.0.0.1:9999)
  -i, --id NAME            your id: 1 to 32 printable characters, no spaces,
                           quotes or backslashes (asked for if not given)
      --to PEER            (send) who gets the message
      --seed               (send) PEER runs the seed's Python client: send a
                           plain `Message <text>`, which it cannot acknowledge
      --accept-new-key     (send) if PEER's key is not the one kept for it,
                           take the new one (without this: exit 1, nothing sent)
      --json               (send) one JSON object: to, delivered, path (lan,
                           direct or relayed) and ms to the acknowledgement;
                           (listen) one JSON object per message:
                           {\"from\":\"alice\",\"text\":\"hi\",\"seed\":false,
                            \"authenticated\":true}
      --bind ADDR          local UDP address (default: an ephemeral port)
      --no-local           do not tell peers this host's LAN address (by default
                           it goes with each introduction, for a LAN path)
      --timeout SECS       (send, who, lookup, ping) give up after SECS (default 60)
      --keepalive SECS     refresh the registration about every SECS seconds
                           (default: every 9 to 12 s, inside a 15 s NAT timeout)
      --identity FILE      your long-term key pair (default
                           $XDG_CONFIG_HOME/parley/identity, else
                           ~/.config/parley/identity; made, mode 0600, the
                           first time parley runs)
      --known-peers FILE   the keys seen for your peers (default: known_peers
                           beside the identity file)
  -h, --help               print this help
  -V, --version            print the version

IN THE CHAT:
",
    chat_commands!(),
    "
  Incoming messages appear above the line you are typing; a message that
  cannot be delivered is reported, never dropped silently.

TWO PEOPLE, TWO TERMINALS:
  parley-server                      # or point --server at a running one
  parley --id alice                  # terminal 1
  parley --id bob                    # terminal 2, then type: /msg alice hi

KEYS:
  Each parley has a key pair, and chat between parleys is encrypted and
  authenticated with it. The first key seen for a peer is kept in the
  known-peers file, as SSH keeps hosts' keys; a peer that later shows
  another key is warned about and nothing is sent to it until you accept,
  never trusted silently. To be sure nobody sat in between even the first
  time, compare safety numbers (/verify ID) by voice. The seed's Python
  client has no key: its messages are shown as (unverified, seed client).

EXIT STATUS:
  0 done; 1 failed (not delivered, unknown peer, no answer from the server,
  id taken, a peer whose key changed (without --accept-new-key), a damaged
  identity or known-peers file, or a peer that never answered and got a
  seed `Message` without --seed: delivery unconfirmed); 2 bad command line.
",
);

/// What the command line asks for.
pub struct Common {
    /// The server.
    pub server: SocketAddr,
    /// As typed, for messages.
    pub server_text: String,
    /// Our id, if given.
    pub id: Option<IdBuf>,
    /// Local address to bind.
    pub bind: Option<SocketAddr>,
    /// Overall limit for scriptable commands.
    pub timeout: Duration,
    /// Keepalive interval, if not the default.
    pub keepalive: Option<u64>,
    /// `--identity`, if given.
    pub identity: Option<PathBuf>,
    /// `--known-peers`, if given.
    pub known_peers: Option<PathBuf>,
}

impl Common {
    /// The client configuration these options ask for.
    pub fn config(&self, id: Option<IdBuf>) -> proto_core::client::Config {
        let mut cfg =
            proto_core::client::Config::new(self.server, id.as_ref().and_then(IdBuf::as_id));
        if let Some(secs) = self.keepalive {
            let ms = secs * 1000;
            cfg.keepalive_min = proto_core::time::Millis(ms - ms / 5);
            cfg.keepalive_max = proto_core::time::Millis(ms);
        }
        cfg
    }

    /// Where the identity file is.
    pub fn identity_path(&self) -> Result<PathBuf, Fail> {
        match &self.identity {
            Some(p) => Ok(p.clone()),
            None => identity::default_path().map_err(|e| Fail::run(e.to_string())),
        }
    }

    /// This client's identity, made (and said so on stderr) the first time.
    pub fn identity(&self) -> Result<Identity, Fail> {
        let path = self.identity_path()?;
        let (id, made) = Identity::load_or_create(&path).map_err(|e| Fail::run(e.to_string()))?;
        if made {
            eprintln!(
                "parley: made a new identity in {} (fingerprint {})",
                path.display(),
                identity::fingerprint(&id.public())
            );
        }
        Ok(id)
    }

    /// The known-peers file: `--known-peers`, else `known_peers` beside the identity.
    pub fn known_peers(&self) -> Result<KnownPeers, Fail> {
        let path = match &self.known_peers {
            Some(p) => p.clone(),
            None => self.identity_path()?.with_file_name("known_peers"),
        };
        KnownPeers::load(&path).map_err(|e| Fail::run(e.to_string()))
    }
}

/// A command line that could not be understood, or a failure: printed as
/// `parley: <message>` with the exit status.
pub struct Fail(pub String, pub u8);

impl Fail {
    /// A failure of the command (status 1).
    pub fn run(msg: impl Into<String>) -> Fail {
        Fail(msg.into(), cli_args::FAILURE_STATUS)
    }
    /// A bad command line (status 2).
    pub fn usage(msg: impl Into<String>) -> Fail {
        Fail(msg.into(), cli_args::USAGE_STATUS)
    }
}

impl From<CliError> for Fail {
    fn from(e: CliError) -> Fail {
        Fail::usage(e.0)
    }
}

fn parse_id(s: &str) -> Result<IdBuf, Fail> {
    Id::new(s)
        .map(IdBuf::from_id)
        .map_err(|e| Fail::usage(format!("bad id {s:?}: {e}")))
}

fn resolve(s: &str) -> Result<SocketAddr, Fail> {
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| Fail::usage(format!("bad server address {s:?} (want HOST:PORT): {e}")))?;
    addrs
        .next()
        .ok_or_else(|| Fail::usage(format!("{s:?} resolves to no address")))
}

/// The options every command shares.
fn common(args: &mut pico_args::Arguments) -> Result<Common, Fail> {
    let server_text =
        opt::<String>(args, ["-s", "--server"])?.unwrap_or_else(|| "127.0.0.1:9999".into());
    let server = resolve(&server_text)?;
    let id = opt::<String>(args, ["-i", "--id"])?
        .map(|s| parse_id(&s))
        .transpose()?;
    let bind = opt(args, "--bind")?;
    let timeout = match opt(args, "--timeout")? {
        None => Duration::from_secs(60),
        Some(v) => Duration::from_secs(check("--timeout", v, v > 0, "more than 0")?),
    };
    let keepalive = opt(args, "--keepalive")?
        .map(|v| within("--keepalive", v, 1..=3600))
        .transpose()?;
    Ok(Common {
        server,
        server_text,
        id,
        bind,
        timeout,
        keepalive,
        identity: opt(args, "--identity")?,
        known_peers: opt(args, "--known-peers")?,
    })
}

/// What `send` alone reads.
struct SendOpts {
    to: Option<String>,
    seed: bool,
    accept_new_key: bool,
}

fn run(raw: Vec<OsString>) -> Result<(), Fail> {
    let mut args = pico_args::Arguments::from_vec(raw);
    let version = env!("CARGO_PKG_VERSION");
    if let Some(text) = cli_args::help_or_version(&mut args, "parley", version, || HELP.into()) {
        print!("{text}");
        return Ok(());
    }
    let common = common(&mut args)?;
    let send = SendOpts {
        to: opt(&mut args, "--to")?,
        seed: args.contains("--seed"),
        accept_new_key: args.contains("--accept-new-key"),
    };
    let json = args.contains("--json");
    if args.contains("--no-local") {
        session::NO_LOCAL.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let sub = args.subcommand().map_err(|e| Fail::usage(e.to_string()))?;
    let rest: Vec<String> = args
        .finish()
        .into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|_| Fail::usage("arguments must be UTF-8"))
        })
        .collect::<Result<_, _>>()?;
    if let Some(flag) = rest.iter().find(|a| a.starts_with('-') && a.len() > 1) {
        if sub.as_deref() != Some("send") {
            return Err(cli_args::unexpected(flag).into());
        }
    }
    dispatch(sub.as_deref(), &rest, common, send, json)
}

/// Run subcommand `sub` with its operands `rest`.
fn dispatch(
    sub: Option<&str>,
    rest: &[String],
    common: Common,
    send: SendOpts,
    json: bool,
) -> Result<(), Fail> {
    let no_extra = || match rest.first() {
        Some(x) => Err(Fail::from(cli_args::unexpected(x))),
        None => Ok(()),
    };
    let one_id = |cmd: &str| match rest {
        [id] => parse_id(id),
        _ => Err(Fail::usage(format!("{cmd} needs exactly one ID"))),
    };
    match sub {
        None => chat::run(common),
        Some("send") => {
            let to = send.to.ok_or_else(|| Fail::usage("send needs --to PEER"))?;
            let to = parse_id(&to)?;
            if rest.is_empty() {
                return Err(Fail::usage("send needs the TEXT to send"));
            }
            let text = rest.join(" ");
            script::send(common, to, &text, send.seed, send.accept_new_key, json)
        }
        Some("listen") => no_extra().and_then(|()| script::listen(common, json)),
        Some("who") => no_extra().and_then(|()| script::who(common)),
        Some("ping") => no_extra().and_then(|()| script::ping(common)),
        Some("whoami") => no_extra().and_then(|()| script::whoami(common)),
        Some("lookup") => script::lookup(common, one_id("lookup")?),
        Some("verify") => script::verify(common, one_id("verify")?),
        Some("netcheck") => netcheck::run(common, rest, json),
        Some(other) => Err(Fail::usage(format!(
            "unknown command {other:?}: use send, listen, who, lookup, ping, whoami, verify or netcheck"
        ))),
    }
}

fn main() -> ExitCode {
    match run(std::env::args_os().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(msg, cli_args::USAGE_STATUS)) => cli_args::usage("parley", &msg),
        Err(Fail(msg, code)) => cli_args::fail("parley", &msg, code),
    }
}
