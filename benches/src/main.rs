//! `parley-loadgen`: see `parley-loadgen --help`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parley_loadgen::cli::{self, Command};
use parley_loadgen::{echo, engine, stats};
use proto_core::server::Layout;

fn main() -> ExitCode {
    let cmd = match cli::parse(std::env::args_os().skip(1).collect()) {
        Ok(c) => c,
        Err(e) => return cli_args::usage("parley-loadgen", &e),
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
            Err(e) => {
                eprintln!("parley-loadgen: {e}");
                ExitCode::FAILURE
            }
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
                Err(e) => {
                    eprintln!("parley-loadgen: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Stats { target, timeout } => match stats::fetch(target, timeout) {
            Ok(pairs) => {
                for (k, v) in pairs {
                    println!("{k}={v}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("parley-loadgen: {target}: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(opts) => {
            let json = opts.json;
            let report = match engine::Engine::new(*opts).and_then(|e| e.run()) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("parley-loadgen: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if json {
                println!("{}", report.json());
            } else {
                print!("{}", report.text());
            }
            if report.lost_registrations() > 0 {
                eprintln!(
                    "parley-loadgen: {} acknowledged registrations were not found",
                    report.lost_registrations()
                );
                return ExitCode::from(3);
            }
            ExitCode::SUCCESS
        }
    }
}
