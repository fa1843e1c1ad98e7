//! The interactive chat: rustyline on the main thread for the line being
//! typed (with history), the session on a network thread that prints
//! incoming messages above the prompt through rustyline's external printer.
//! Without a terminal (stdin piped) the same commands are read line by line
//! and everything is printed plainly, which is what the tests drive.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use proto_core::client::{CommandError, Config, Event, Outcome, Undelivered, What};
use proto_core::secure::PublicKey;
use proto_core::wire::{Id, IdBuf};
use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};

use crate::known_peers::KnownPeers;
use crate::online::{self, Pages};
use crate::script;
use crate::session::Session;
use crate::show::Notice;
use crate::{Common, Fail};
use crate::{identity, show};

/// How long leaving waits for messages in flight to be acknowledged.
const QUIT_GRACE: Duration = Duration::from_secs(20);

/// Lines typed, as the network thread acts on them.
enum Cmd {
    Send(IdBuf, String),
    Accept(IdBuf),
    Who,
    Lookup(IdBuf),
    Path(IdBuf),
    Ping,
    Quit,
}

/// Where the network thread prints.
type Out = Arc<Mutex<Box<dyn FnMut(String) + Send>>>;

/// Keys peers offered that differ from the pinned ones, by id, until the
/// person accepts them.
type Offered = Arc<Mutex<HashMap<String, [u8; 32]>>>;

/// What the editor needs to answer `/whoami` and `/verify` itself.
struct Me {
    whoami: String,
    key: [u8; 32],
    known: PathBuf,
    offered: Offered,
}

fn say(out: &Out, line: String) {
    if let Ok(mut f) = out.lock() {
        f(line);
    }
}

const CHAT_HELP: &str = concat!("commands:\n", chat_commands!());

/// `parley [--server HOST:PORT] [--id NAME]`.
pub fn run(c: Common) -> Result<(), Fail> {
    let mut rl =
        DefaultEditor::new().map_err(|e| Fail::run(format!("cannot open the terminal: {e}")))?;
    let id = match c.id {
        Some(id) => id,
        None => ask_id(&mut rl)?,
    };
    let me = id
        .as_id()
        .ok_or_else(|| Fail::usage("bad id"))?
        .as_str()
        .to_string();
    let ident = c.identity()?;
    let known = c.known_peers()?;
    let mut cfg: Config = c.config(Some(id));
    cfg.subscribe = true;
    let mut s =
        Session::open(cfg, c.bind, Some((&ident, &known))).map_err(|e| Fail::run(e.to_string()))?;
    println!("connecting to {} as {me}...", c.server_text);
    let seen = wait_registered(&mut s, &c)?;
    println!(
        "You are {me} (the server sees you as {seen}). Type /help for commands, /msg ID TEXT to talk."
    );

    let out: Out = match rl.create_external_printer() {
        Ok(mut p) => Arc::new(Mutex::new(Box::new(move |line: String| {
            let _ = p.print(format!("{line}\n"));
        }))),
        // Not a terminal: plain lines on stdout.
        Err(_) => Arc::new(Mutex::new(Box::new(|line: String| println!("{line}")))),
    };
    let current = Arc::new(Mutex::new(Conversation::default()));
    let offered: Offered = Arc::default();
    let (tx, rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let known_path = known.path().to_path_buf();
    let net = Net {
        s,
        rx,
        done: done_tx,
        backlog: VecDeque::new(),
        quitting: None,
        screen: Screen {
            out: out.clone(),
            current: current.clone(),
            server: c.server_text.clone(),
            known,
            offered: offered.clone(),
            who: None,
        },
    };
    let net = thread::spawn(move || network(net));
    let _ = tx.send(Cmd::Who);
    let me = Me {
        whoami: format!(
            "* you are {me}, key fingerprint {} (the server sees you as {seen})",
            identity::fingerprint(&ident.public())
        ),
        key: ident.public(),
        known: known_path,
        offered,
    };
    let r = editor(&mut rl, &tx, &out, &current, &done_rx, &me);
    if !net.is_finished() {
        let _ = tx.send(Cmd::Quit);
        // The network thread signs off (QUIT, up to two seconds for BYE).
        let _ = done_rx.recv_timeout(QUIT_GRACE + Duration::from_secs(3));
    }
    drop(tx);
    let _ = net.join();
    r
}

fn ask_id(rl: &mut DefaultEditor) -> Result<IdBuf, Fail> {
    loop {
        match rl.readline("Enter your id: ") {
            Ok(line) => match Id::new(line.trim()) {
                Ok(id) => return Ok(IdBuf::from_id(id)),
                Err(e) => eprintln!("{e}"),
            },
            Err(_) => return Err(Fail::usage("no id given (use --id NAME)")),
        }
    }
}

fn wait_registered(s: &mut Session, c: &Common) -> Result<String, Fail> {
    let server = &c.server_text;
    s.wait(c.timeout, |e| match e {
        Event::Registered { addr, .. } => Some(Ok(addr.to_string())),
        Event::RegistrationFailed(f) => Some(Err(Fail::run(format!(
            "cannot register with {server}: {f}"
        )))),
        _ => None,
    })
    .unwrap_or_else(|| Err(Fail::run(format!("the server at {server} did not answer"))))
}

/// The prompt: who plain lines go to.
/// Who plain lines go to, and who they went to before the last `/msg` or
/// `/to`: that id may turn out to be nobody online, and then plain lines
/// go back where they went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Conversation {
    with: Option<String>,
    before: Option<String>,
}

impl Conversation {
    /// Plain lines go to `id` from now on.
    fn switch(&mut self, id: &str) {
        if self.with.as_deref() != Some(id) {
            self.before = self.with.replace(id.to_string());
        }
    }

    /// `id` wrote first: it becomes the conversation if there is none.
    fn offer(&mut self, id: &str) {
        if self.with.is_none() {
            self.with = Some(id.to_string());
        }
    }

    /// Nobody called `id` is online: if plain lines were going to it, they
    /// go back to the conversation before. Whether that changed anything.
    fn nobody(&mut self, id: &str) -> bool {
        if self.with.as_deref() != Some(id) {
            return false;
        }
        self.with = self.before.take();
        true
    }
}

fn prompt(current: &Arc<Mutex<Conversation>>) -> String {
    match current.lock().ok().and_then(|c| c.with.clone()) {
        Some(peer) => format!("to {peer}> "),
        None => "> ".to_string(),
    }
}

fn editor(
    rl: &mut DefaultEditor,
    tx: &Sender<Cmd>,
    out: &Out,
    current: &Arc<Mutex<Conversation>>,
    done: &Receiver<()>,
    me: &Me,
) -> Result<(), Fail> {
    loop {
        if done.try_recv().is_ok() {
            return Err(Fail::run("the session ended"));
        }
        let line = match rl.readline(&prompt(current)) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => return Ok(()),
            Err(e) => return Err(Fail::run(format!("cannot read the terminal: {e}"))),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(line);
        if typed(line, tx, out, current, me) == Typed::Leave {
            return Ok(());
        }
    }
}

/// What a typed line came to.
#[derive(PartialEq, Eq)]
enum Typed {
    Done,
    Leave,
}

/// Act on one line typed: a command, or text for the current conversation.
fn typed(
    line: &str,
    tx: &Sender<Cmd>,
    out: &Out,
    current: &Arc<Mutex<Conversation>>,
    me: &Me,
) -> Typed {
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    let set_current = |id: &IdBuf| {
        if let (Ok(mut c), Some(i)) = (current.lock(), id.as_id()) {
            c.switch(i.as_str());
        }
    };
    // A closed channel means the network thread has ended; the editor
    // learns that from `done`.
    let send = |cmd: Cmd| {
        let _ = tx.send(cmd);
    };
    let peer = |s: &str| -> Option<IdBuf> {
        match Id::new(s) {
            Ok(id) => Some(IdBuf::from_id(id)),
            Err(e) => {
                say(out, format!("! bad id {s:?}: {e}"));
                None
            }
        }
    };
    match word {
        "/quit" | "/exit" => return Typed::Leave,
        "/help" => say(out, CHAT_HELP.to_string()),
        "/whoami" => say(out, me.whoami.clone()),
        "/verify" => {
            if let Some(id) = peer(rest) {
                say(out, verify(me, id.as_id().map_or("", |i| i.as_str())));
            }
        }
        "/accept" => {
            if let Some(id) = peer(rest) {
                send(Cmd::Accept(id));
            }
        }
        "/who" => send(Cmd::Who),
        "/ping" => send(Cmd::Ping),
        "/lookup" => {
            if let Some(id) = peer(rest) {
                send(Cmd::Lookup(id));
            }
        }
        "/path" => {
            if let Some(id) = peer(rest) {
                send(Cmd::Path(id));
            }
        }
        "/to" => {
            if rest.is_empty() {
                say(out, "! usage: /to ID".into());
            } else if let Some(id) = peer(rest) {
                set_current(&id);
            }
        }
        "/msg" => {
            let Some((to, text)) = rest.split_once(' ') else {
                say(out, "! usage: /msg ID TEXT".into());
                return Typed::Done;
            };
            if let Some(id) = peer(to) {
                set_current(&id);
                send(Cmd::Send(id, text.trim().to_string()));
            }
        }
        w if w.starts_with('/') && !w.starts_with("//") => {
            say(out, format!("! unknown command {w}; /help lists them"));
        }
        _ => plain(line, tx, out, current),
    }
    Typed::Done
}

/// A plain line: text for the current conversation.
fn plain(line: &str, tx: &Sender<Cmd>, out: &Out, current: &Arc<Mutex<Conversation>>) {
    // "//text" sends "/text".
    let text = line
        .strip_prefix('/')
        .filter(|t| t.starts_with('/'))
        .unwrap_or(line);
    match current.lock().ok().and_then(|c| c.with.clone()) {
        Some(peer) => {
            if let Ok(id) = Id::new(&peer) {
                let _ = tx.send(Cmd::Send(IdBuf::from_id(id), text.to_string()));
            }
        }
        None => say(
            out,
            "! no conversation yet: /msg ID TEXT, or /to ID first".into(),
        ),
    }
}

/// What the network thread owns.
struct Net {
    s: Session,
    rx: Receiver<Cmd>,
    done: Sender<()>,
    /// Lines typed while the client had too many messages in flight wait
    /// here, in order, instead of being refused.
    backlog: VecDeque<(IdBuf, String)>,
    /// Set by /quit: leave once nothing is in flight (or at this deadline).
    quitting: Option<Instant>,
    screen: Screen,
}

/// What events are shown on and change: the output, the conversation,
/// the keys.
struct Screen {
    out: Out,
    current: Arc<Mutex<Conversation>>,
    server: String,
    known: KnownPeers,
    offered: Offered,
    /// The `/who` list being gathered, page by page.
    who: Option<(Pages, Vec<String>)>,
}

/// What an event asks of the network thread once it has been shown.
enum Then {
    Go,
    /// Ask for the online list's next page.
    Page(u32),
    /// The registration is lost: the session is over.
    Stop,
}

/// The network thread: runs the session, acts on commands, prints events.
fn network(mut net: Net) {
    loop {
        if net.leaving() {
            net.s.sign_off();
            break;
        }
        net.s.step(Duration::from_millis(50));
        net.send_backlog();
        net.take_commands();
        if !net.show_events() {
            break;
        }
    }
    let _ = net.done.send(());
}

impl Net {
    /// After `/quit`: whether nothing is left in flight, or time is up.
    fn leaving(&mut self) -> bool {
        let Some(deadline) = self.quitting else {
            return false;
        };
        let idle = self.backlog.is_empty() && self.s.client().in_flight() == 0;
        idle || Instant::now() >= deadline
    }

    /// Send what waits in the backlog, in order, while the client takes it.
    fn send_backlog(&mut self) {
        while let Some((to, text)) = self.backlog.front() {
            if let Some(id) = to.as_id() {
                match self.s.with(|c, now| c.send_message(now, id, text)) {
                    Err(CommandError::Busy) => break,
                    Err(e) => say(&self.screen.out, format!("! {e}")),
                    Ok(_) => {}
                }
            }
            self.backlog.pop_front();
        }
    }

    /// Act on every line typed since the last round.
    fn take_commands(&mut self) {
        loop {
            let cmd = match self.rx.try_recv() {
                Ok(c) => c,
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => Cmd::Quit,
            };
            if let Err(e) = self.command(cmd) {
                say(&self.screen.out, format!("! {e}"));
            }
        }
    }

    fn command(&mut self, cmd: Cmd) -> Result<(), CommandError> {
        let out = &self.screen.out;
        match cmd {
            Cmd::Send(to, text) => {
                let Some(id) = to.as_id() else { return Ok(()) };
                let peer = id.as_str();
                if self
                    .screen
                    .offered
                    .lock()
                    .is_ok_and(|o| o.contains_key(peer))
                {
                    say(
                        out,
                        format!(
                            "! held, not sent: {peer}'s key changed (see the warning above); /verify {peer}, then /accept {peer} only if {peer} confirms"
                        ),
                    );
                }
                if !self.backlog.is_empty() {
                    self.backlog.push_back((to, text));
                    return Ok(());
                }
                match self.s.with(|c, now| c.send_message(now, id, &text)) {
                    Err(CommandError::Busy) if self.backlog.len() < 1000 => {
                        self.backlog.push_back((to, text));
                        Ok(())
                    }
                    r => r.map(|_| ()),
                }
            }
            Cmd::Who if self.screen.who.is_none() => {
                self.screen.who = Some((Pages::up_to(MAX_WHO), Vec::new()));
                self.s.with(|c, now| c.list(now, 0))
            }
            Cmd::Who => Ok(()),
            Cmd::Lookup(id) => match id.as_id() {
                Some(id) => self.s.with(|c, now| c.lookup(now, id)),
                None => Ok(()),
            },
            Cmd::Path(id) => {
                if let Some(i) = id.as_id() {
                    let now = self.s.now();
                    let line = match self.s.client().route(now, i) {
                        Some(r) => format!("* {i}: {r}"),
                        None => format!("* {i}: no session (nothing sent or received lately)"),
                    };
                    say(out, line);
                }
                Ok(())
            }
            Cmd::Ping => self.s.with(|c, now| c.ping(now)),
            Cmd::Accept(id) => {
                let sc = &mut self.screen;
                accept(&mut self.s, &mut sc.known, &sc.offered, &sc.out, &id);
                Ok(())
            }
            Cmd::Quit => {
                if self.quitting.is_none() {
                    let waiting = self.backlog.len() + self.s.client().in_flight();
                    if waiting > 0 {
                        say(
                            out,
                            format!(
                                "* waiting for {waiting} message(s) to be acknowledged before leaving..."
                            ),
                        );
                    }
                    self.quitting = Some(Instant::now() + QUIT_GRACE);
                }
                Ok(())
            }
        }
    }

    /// Show every event there is; false once the session is over.
    fn show_events(&mut self) -> bool {
        loop {
            let Some(e) = self.s.client().poll_event() else {
                return true;
            };
            match self.screen.show(&e) {
                Then::Go => {}
                Then::Page(next) => {
                    if self.s.with(|c, now| c.list(now, next)).is_err() {
                        self.screen.who = None;
                    }
                }
                Then::Stop => return false,
            }
        }
    }
}

/// Ids the chat's `/who` gathers at most (`parley who` lists them all).
const MAX_WHO: usize = 100_000;

impl Screen {
    fn show(&mut self, e: &Event<'_>) -> Then {
        let out = &self.out;
        if let Some((from, line)) = show::incoming(e, false) {
            if let Some(f) = from {
                if let Ok(mut c) = self.current.lock() {
                    c.offer(f);
                }
            }
            say(out, line);
            return Then::Go;
        }
        match e {
            Event::KeyFirstSeen { .. } => {
                if let Some(line) = script::keep_key(&mut self.known, e) {
                    say(out, line);
                }
            }
            Event::KeyChanged { id, offered, .. } => {
                if let Ok(mut o) = self.offered.lock() {
                    o.insert(id.as_str().to_string(), offered.0);
                }
                self.notice(e);
            }
            Event::Page { next, ids } => {
                let (pages, list) = self
                    .who
                    .get_or_insert_with(|| (Pages::up_to(MAX_WHO), Vec::new()));
                list.extend(ids.iter().map(|i| i.as_str().to_string()));
                if let Some(next) = pages.after(*next, ids.iter().count()) {
                    return Then::Page(next);
                }
                say(out, online::line(list));
                self.who = None;
            }
            Event::Failed {
                what: What::List, ..
            } => {
                self.who = None;
                self.notice(e);
            }
            Event::Sent {
                to,
                outcome: Outcome::NotDelivered(reason @ Undelivered::NoSuchPeer),
                ..
            } => {
                let to = to.as_str();
                let mut line = Notice::NotDelivered { to, reason }.line();
                if let Ok(mut c) = self.current.lock() {
                    if c.nobody(to) {
                        line.push_str(&match &c.with {
                            Some(back) => format!("; plain lines go to {back} again"),
                            None => "; no conversation now".to_string(),
                        });
                    }
                }
                say(out, line);
            }
            Event::RegistrationFailed(f) => {
                say(
                    out,
                    format!("! lost the registration: {f}; press Enter to leave"),
                );
                return Then::Stop;
            }
            e => self.notice(e),
        }
        Then::Go
    }

    fn notice(&self, e: &Event<'_>) {
        if let Some(n) = Notice::of(e, &self.server) {
            say(&self.out, n.line());
        }
    }
}

/// `/accept ID`: take the key ID offered in place of the pinned one, keep
/// it in the known-peers file, and let the held messages go.
fn accept(s: &mut Session, known: &mut KnownPeers, offered: &Offered, out: &Out, id: &IdBuf) {
    let Some(peer) = id.as_id() else { return };
    let key = offered
        .lock()
        .ok()
        .and_then(|mut o| o.remove(peer.as_str()));
    let Some(key) = key else {
        say(
            out,
            format!("! {peer}'s key has not changed: there is nothing to accept"),
        );
        return;
    };
    if let Err(e) = known.set(peer.as_str(), key) {
        say(out, format!("! {e}; the new key is not accepted"));
        if let Ok(mut o) = offered.lock() {
            o.insert(peer.as_str().to_string(), key);
        }
        return;
    }
    match s.with(|c, now| c.accept_key(now, peer, PublicKey(key))) {
        Ok(()) => say(
            out,
            format!(
                "* accepted {peer}'s new key {} (kept in {}); messages held for {peer} go now",
                identity::fingerprint(&key),
                known.path().display()
            ),
        ),
        Err(e) => say(out, format!("! could not accept {peer}'s key: {e}")),
    }
}

/// The `/verify ID` lines: the safety number with the pinned key, and
/// with a changed key waiting to be accepted.
fn verify(me: &Me, id: &str) -> String {
    let pinned = KnownPeers::load(&me.known).map(|k| k.get(id));
    let offered = me.offered.lock().ok().and_then(|o| o.get(id).copied());
    let mut out = match pinned {
        Err(e) => format!("! {e}"),
        Ok(None) => format!("! no key is known for {id} yet: exchange a message first"),
        Ok(Some(k)) => format!(
            "* safety number with {id}: {}\n  read it to {id} by voice; {id}'s /verify for you must show the same digits",
            identity::safety_line(&me.key, &k)
        ),
    };
    if let Some(k) = offered {
        out.push_str(&format!(
            "\n!!! the NEW key {id} offers (not accepted) would give: {}",
            identity::safety_line(&me.key, &k)
        ));
    }
    out
}

#[cfg(test)]
mod conversation_tests {
    use super::Conversation;

    #[test]
    fn a_msg_to_nobody_hands_plain_lines_back() {
        let mut c = Conversation::default();
        c.offer("carl");
        assert_eq!(c.with.as_deref(), Some("carl"), "the first writer");
        c.offer("dan");
        assert_eq!(c.with.as_deref(), Some("carl"), "only when there is none");
        c.switch("bob");
        c.switch("bob");
        c.switch("nobody");
        assert!(!c.nobody("someone else"));
        assert!(c.nobody("nobody"));
        assert_eq!(c.with.as_deref(), Some("bob"));
        // Only one step back is kept.
        assert!(c.nobody("bob"));
        assert_eq!(c.with, None);
        assert!(!c.nobody("bob"));
    }
}
