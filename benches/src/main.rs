//! `parley-loadgen`: see `parley-loadgen --help`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parley_loadgen::cli::{self, Command};
use parley_loadgen::{echo, engine, stats};
use proto_core::server::Layout;

const PROGRAM: &str = "parley-loadgen";

/// Report a failure and the status to exit with.
fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    cli_args::fail(PROGRAM, e, cli_args::FAILURE_STATUS)
}

fn main() -> ExitCode {
    let cmd = match cli::parse(std::env::args_os().skip(1).collect()) {
        Ok(c) => c,
        Err(e) => return cli_args::usage(PROGRAM, &e),
    };
    match cmd {
        Command::Exit(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Command::TableCost(n) => {
            println!("{}", Layout::for_capacity(n).bytes());
            ExitCode::SUCCESS
        }
        Command::StateCost { ids, dir } => match parley_loadgen::statecost::run(ids, &dir) {
            Ok(r) => {
                println!("{r}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Echo(o) => {
            let wait = if o.epoll {
                echo::Wait::Epoll
            } else {
                echo::Wait::Recv
            };
            let stop = Arc::new(AtomicBool::new(false));
            match echo::run(o.bind, o.duration, stop, wait, o.df) {
                Ok(st) => {
                    eprintln!("echo: {} received, {} sent", st.received, st.sent);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Stats { target, timeout } => match stats::fetch(target, timeout) {
            Ok(pairs) => {
                for (k, v) in pairs {
                    println!("{k}={v}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("{target}: {e}")),
        },
        Command::Run(opts) => {
            let json = opts.json;
            let report = match engine::Engine::new(*opts).and_then(|e| e.run()) {
                Ok(r) => r,
                Err(e) => return fail(&e),
            };
            if json {
                println!("{}", report.json());
            } else {
                print!("{}", report.text());
            }
            if report.lost_registrations() > 0 {
                let lost = format!(
                    "{} acknowledged registrations were not found",
                    report.lost_registrations()
                );
                return cli_args::fail(PROGRAM, &lost, 3);
            }
            ExitCode::SUCCESS
        }
    }
}
