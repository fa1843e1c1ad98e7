//! `parley-server`: see `parley-server --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match parley_server::cli::parse(std::env::args_os().skip(1).collect()) {
        Ok(parley_server::cli::Parsed::Run(opts)) => opts,
        Ok(parley_server::cli::Parsed::Exit(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => return cli_args::usage("parley-server", &e),
    };
    parley_server::init_logging(&opts.log_level);
    match parley_server::run(&opts, parley_server::Hooks::default()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            cli_args::fail("parley-server", &e, cli_args::FAILURE_STATUS)
        }
    }
}
