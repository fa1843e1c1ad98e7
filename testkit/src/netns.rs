//! Running a test inside a network namespace of its own, so it can own a
//! fixed port (the seed client's 127.0.0.1:9999), add a documentation
//! address to its loopback or shape its traffic without touching the
//! host's network. The namespace goes away with the last process in it.
//! (The NAT lab, [`crate::natlab`], builds whole networks of them.)

use std::process::Command;

/// Whether this process may make a network namespace (root and `unshare`).
pub fn available() -> bool {
    Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// `sh -c script` in a fresh network namespace whose loopback is up, or
/// `None` where no namespace can be made.
pub fn sh(script: &str) -> Option<Command> {
    if !available() {
        return None;
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "sh", "-c", &format!("ip link set lo up && {script}")]);
    Some(cmd)
}

/// `sh -c script` in a fresh network namespace where one can be made,
/// else on the host, where the script must be able to bind `port` on
/// 127.0.0.1 (checked here: a test that cannot run says so).
pub fn sh_owning_port(script: &str, port: u16) -> Command {
    sh(script).unwrap_or_else(|| {
        assert!(
            std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok(),
            "no network namespace and 127.0.0.1:{port} is taken: cannot run this test"
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    })
}

/// Run `f` on a thread of its own network namespace, its loopback up and
/// then set up by `commands` (each a command line split on spaces, such
/// as a `tc` qdisc). `None` where this process may not make a namespace
/// or a command fails.
#[cfg(target_os = "linux")]
pub fn on_thread<R: Send + 'static>(
    commands: &'static [&'static str],
    f: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    std::thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNET moves only this thread
        // (and what it starts) into a new, empty network namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            eprintln!("unshare: {}", std::io::Error::last_os_error());
            return None;
        }
        for cmd in std::iter::once("ip link set lo up").chain(commands.iter().copied()) {
            let mut words = cmd.split(' ');
            let ok = Command::new(words.next()?)
                .args(words)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("{cmd} failed");
                return None;
            }
        }
        Some(f())
    })
    .join()
    .expect("the namespace's thread finished")
}

/// A `tc` command that makes the loopback send at 10 Mbit/s through a
/// token bucket: datagrams wait in the qdisc, so a small send buffer
/// fills (on a plain loopback it never does: the kernel frees each
/// datagram as it is handed over).
pub const SLOW_LOOPBACK: &str = "tc qdisc add dev lo root tbf rate 10mbit burst 1600 latency 1s";
