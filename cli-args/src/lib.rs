//! The command-line convention of Parley's binaries (`parley-server`,
//! `parley`, `parley-loadgen`), in the one place they all read it from.
//!
//! - An option's value that does not parse is refused with a sentence that
//!   names the option: `--capacity: 'x' is not valid: invalid digit found in string`;
//!   one that parses but is out of bounds says what it must be:
//!   `--lanes: must be between 1 and 1024, not 0` ([`check`], [`within`]).
//! - A bad command line is printed as `PROGRAM: what is wrong`, then
//!   `Try 'PROGRAM --help'.`, and the program exits with status 2
//!   ([`usage`]); other failures are printed as `PROGRAM: what went wrong`
//!   and exit with 1 or a status of their own ([`fail`]).
//!
//! A crate of its own rather than a module of one binary's crate, so that
//! no binary depends on another for ten lines.

use std::fmt;
use std::ops::RangeInclusive;
use std::process::ExitCode;
use std::str::FromStr;

/// The exit status of a command line that could not be understood.
pub const USAGE_STATUS: u8 = 2;

/// A command line that could not be understood: a sentence that names the
/// option or argument at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// The names an option goes by: `"--bind"` or `["-s", "--server"]`.
pub trait Keys: Copy + Into<pico_args::Keys> {
    /// The name error messages use (the long one).
    fn name(self) -> &'static str;
}

impl Keys for &'static str {
    fn name(self) -> &'static str {
        self
    }
}

impl Keys for [&'static str; 2] {
    fn name(self) -> &'static str {
        self[1]
    }
}

/// The value of option `keys`, if given; an error that names the option if
/// it has no value or the value is not a `T`.
pub fn opt<T: FromStr>(
    args: &mut pico_args::Arguments,
    keys: impl Keys,
) -> Result<Option<T>, CliError>
where
    T::Err: fmt::Display,
{
    args.opt_value_from_str(keys)
        .map_err(|e| arg_error(keys.name(), e))
}

/// Overwrite `slot` with the value of option `keys`, if given; an error
/// that names the option otherwise, as [`opt`].
pub fn set<T: FromStr>(
    args: &mut pico_args::Arguments,
    keys: impl Keys,
    slot: &mut T,
) -> Result<(), CliError>
where
    T::Err: fmt::Display,
{
    if let Some(v) = opt(args, keys)? {
        *slot = v;
    }
    Ok(())
}

/// `value` if `ok`, else the refusal every binary gives for a value that
/// parsed but is out of bounds: `NAME: must be WANT, not VALUE`.
pub fn check<T: fmt::Display>(name: &str, value: T, ok: bool, want: &str) -> Result<T, CliError> {
    if ok {
        Ok(value)
    } else {
        Err(CliError(format!("{name}: must be {want}, not {value}")))
    }
}

/// `value` if `range` holds it, else `NAME: must be between LO and HI, not VALUE`.
pub fn within<T: fmt::Display + PartialOrd>(
    name: &str,
    value: T,
    range: RangeInclusive<T>,
) -> Result<T, CliError> {
    let ok = range.contains(&value);
    let want = format!("between {} and {}", range.start(), range.end());
    check(name, value, ok, &want)
}

/// The next free argument (a subcommand's operand) as a `T`; `name` says
/// what it is in the error (`table-cost N`).
pub fn free<T: FromStr>(args: &mut pico_args::Arguments, name: &str) -> Result<T, CliError>
where
    T::Err: fmt::Display,
{
    args.free_from_str().map_err(|e| arg_error(name, e))
}

/// `name: what is wrong`, for a pico-args error about argument `name`.
pub fn arg_error(name: &str, e: pico_args::Error) -> CliError {
    let what = match e {
        pico_args::Error::Utf8ArgumentParsingFailed { value, cause } => {
            format!("'{value}' is not valid: {cause}")
        }
        pico_args::Error::OptionWithoutAValue(_) => "needs a value".into(),
        pico_args::Error::MissingArgument => "is missing".into(),
        other => other.to_string(),
    };
    CliError(format!("{name}: {what}"))
}

/// The text to print before exiting successfully if `args` ask for
/// `-h`/`--help` (`help()`) or `-V`/`--version` (`PROGRAM VERSION`).
pub fn help_or_version(
    args: &mut pico_args::Arguments,
    program: &str,
    version: &str,
    help: impl FnOnce() -> String,
) -> Option<String> {
    if args.contains(["-h", "--help"]) {
        return Some(help());
    }
    if args.contains(["-V", "--version"]) {
        return Some(format!("{program} {version}\n"));
    }
    None
}

/// Refuse whatever is left once every option has been taken.
pub fn finish(args: pico_args::Arguments) -> Result<(), CliError> {
    match args.finish().first() {
        Some(first) => Err(unexpected(&first.to_string_lossy())),
        None => Ok(()),
    }
}

/// The refusal of an argument nothing asked for.
pub fn unexpected(arg: &str) -> CliError {
    CliError(format!("unexpected argument '{arg}'"))
}

/// Report a bad command line the way every Parley binary does, and the
/// status to exit with.
pub fn usage(program: &str, e: &dyn fmt::Display) -> ExitCode {
    eprintln!("{program}: {e}");
    eprintln!("Try '{program} --help'.");
    ExitCode::from(USAGE_STATUS)
}

/// Report a failure of what a good command line asked for the way every
/// Parley binary does (`PROGRAM: what went wrong`), and the status to exit
/// with.
pub fn fail(program: &str, e: &dyn fmt::Display, status: u8) -> ExitCode {
    eprintln!("{program}: {e}");
    ExitCode::from(status)
}

/// The exit status of a failure that has no status of its own.
pub const FAILURE_STATUS: u8 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn args(a: &[&str]) -> pico_args::Arguments {
        pico_args::Arguments::from_vec(a.iter().map(OsString::from).collect())
    }

    #[test]
    fn values_are_read_under_either_name() {
        let mut a = args(&["-s", "h:1", "--port=7"]);
        assert_eq!(
            opt::<String>(&mut a, ["-s", "--server"]),
            Ok(Some("h:1".into()))
        );
        assert_eq!(opt::<u16>(&mut a, "--port"), Ok(Some(7)));
        assert_eq!(opt::<u16>(&mut a, "--absent"), Ok(None));
        assert_eq!(finish(a), Ok(()));
    }

    #[test]
    fn errors_name_the_option_and_say_what_is_wrong() {
        let e = opt::<u16>(&mut args(&["--port", "x"]), "--port").unwrap_err();
        assert!(e.0.starts_with("--port: 'x' is not valid: "), "{e}");
        let e = opt::<String>(&mut args(&["--server"]), ["-s", "--server"]).unwrap_err();
        assert_eq!(e.0, "--server: needs a value");
        let e = free::<usize>(&mut args(&[]), "table-cost N").unwrap_err();
        assert_eq!(e.0, "table-cost N: is missing");
        let e = finish(args(&["--frobnicate"])).unwrap_err();
        assert_eq!(e.to_string(), "unexpected argument '--frobnicate'");
        assert_eq!(
            within("--lanes", 0, 1..=8).unwrap_err().0,
            "--lanes: must be between 1 and 8, not 0"
        );
        assert_eq!(within("--lanes", 8, 1..=8), Ok(8));
        let e = check("--rate", 0, false, "at least 1").unwrap_err();
        assert_eq!(e.0, "--rate: must be at least 1, not 0");
    }

    #[test]
    fn set_overwrites_only_what_is_given() {
        let mut a = args(&["--lease", "30"]);
        let (mut lease, mut rate) = (10u32, 5u32);
        assert_eq!(set(&mut a, "--lease", &mut lease), Ok(()));
        assert_eq!(set(&mut a, "--rate", &mut rate), Ok(()));
        assert_eq!((lease, rate), (30, 5));
        let e = set(&mut args(&["--rate", "x"]), "--rate", &mut rate).unwrap_err();
        assert!(e.0.starts_with("--rate: 'x' is not valid"), "{e}");
    }

    #[test]
    fn help_and_version_are_answered_before_anything_else() {
        let help = || "HELP".to_string();
        let text = |a: &[&str]| help_or_version(&mut args(a), "prog", "1.2.3", help);
        assert_eq!(text(&["--bind", "x", "-h"]), Some("HELP".into()));
        assert_eq!(text(&["--version"]), Some("prog 1.2.3\n".into()));
        assert_eq!(text(&["-V"]), Some("prog 1.2.3\n".into()));
        assert_eq!(text(&["--bind", "x"]), None);
    }

    #[test]
    fn a_bad_command_line_exits_with_the_usage_status() {
        assert_eq!(
            usage("prog", &CliError("x".into())),
            ExitCode::from(USAGE_STATUS)
        );
        assert_eq!(fail("prog", &"x", 3), ExitCode::from(3));
    }
}
