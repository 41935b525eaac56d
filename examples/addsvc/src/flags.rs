//! Command-line flags as Go's `flag` package reads them, so that go-kit's addsvc and addcli
//! command lines work unchanged: `-name value`, `-name=value`, `--name value`, and positional
//! arguments after the flags (or after `--`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// A flag: its name, default and help.
#[derive(Clone, Copy, Debug)]
pub struct Flag {
    name: &'static str,
    default: &'static str,
    help: &'static str,
}

impl Flag {
    /// A flag named `name` (without dashes).
    pub const fn new(name: &'static str, default: &'static str, help: &'static str) -> Flag {
        Flag {
            name,
            default,
            help,
        }
    }
}

/// Parsed flags and positional arguments.
#[derive(Debug)]
pub struct Parsed {
    values: HashMap<&'static str, String>,
    /// The arguments after the flags.
    pub positional: Vec<String>,
}

impl Parsed {
    /// The value of the flag `name`, or its default.
    ///
    /// # Panics
    ///
    /// If `name` is not one of the flags given to [`parse`]: a programming error.
    pub fn get(&self, name: &str) -> &str {
        match self.values.get(name) {
            Some(value) => value,
            None => panic!("no flag named {name}"),
        }
    }
}

/// Reads `args` (without the program name) against `flags`. `-h` or `-help` is an error whose
/// text is the usage.
pub fn parse(flags: &[Flag], args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut values: HashMap<&'static str, String> = flags
        .iter()
        .map(|f| (f.name, f.default.to_owned()))
        .collect();
    let mut args = args.into_iter();
    let mut positional = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--" {
            positional.extend(args.by_ref());
            break;
        }
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            positional.push(arg);
            positional.extend(args.by_ref());
            break;
        };
        if flag.is_empty() || flag.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            // "-" alone, or a negative number: a positional argument.
            positional.push(arg.clone());
            positional.extend(args.by_ref());
            break;
        }
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (flag, None),
        };
        if name == "h" || name == "help" {
            return Err(usage(flags));
        }
        let Some(known) = flags.iter().find(|f| f.name == name) else {
            return Err(format!(
                "flag provided but not defined: -{name}\n{}",
                usage(flags)
            ));
        };
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .ok_or_else(|| format!("flag needs an argument: -{name}"))?,
        };
        values.insert(known.name, value);
    }
    Ok(Parsed { values, positional })
}

/// The flags' usage text.
pub fn usage(flags: &[Flag]) -> String {
    let mut out = String::from("Flags:\n");
    for f in flags {
        out.push_str(&format!(
            "  -{} {:?}\n        {}\n",
            f.name, f.default, f.help
        ));
    }
    out
}

/// A listen address as Go writes it: `:8080` is every interface, else `host:port` (a name
/// such as `localhost` is resolved; its first address is used).
pub fn addr(value: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let full = match value.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => value.to_owned(),
    };
    full.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("{value:?} is not a listen address (HOST:PORT or :PORT)"))
}

/// A duration as Go writes it, in one unit: `500ms`, `30s`, `2m`, `1h`.
pub fn duration(value: &str) -> Result<Duration, String> {
    let bad = || format!("{value:?} is not a duration like 500ms, 30s or 2m");
    let split = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = value.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = |per: u64| n.checked_mul(per).map(Duration::from_secs).ok_or_else(bad);
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => seconds(60),
        "h" => seconds(3600),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        Flag::new("http-addr", "", "h"),
        Flag::new("method", "sum", "m"),
    ];

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn go_style_flags_then_positional_arguments() {
        let p = parse(FLAGS, args("-http-addr localhost:8081 -method=concat a b")).unwrap();
        assert_eq!(p.get("http-addr"), "localhost:8081");
        assert_eq!(p.get("method"), "concat");
        assert_eq!(p.positional, ["a", "b"]);
        let p = parse(FLAGS, args("--http-addr :1 -5 -7")).unwrap();
        assert_eq!((p.get("http-addr"), p.get("method")), (":1", "sum"));
        assert_eq!(p.positional, ["-5", "-7"]);
        let p = parse(FLAGS, args("-- -method x")).unwrap();
        assert_eq!(p.positional, ["-method", "x"]);
        assert!(
            parse(FLAGS, args("-nope 1"))
                .unwrap_err()
                .contains("not defined: -nope")
        );
        assert!(
            parse(FLAGS, args("-method"))
                .unwrap_err()
                .contains("needs an argument")
        );
        assert!(parse(FLAGS, args("-h")).unwrap_err().starts_with("Flags:"));
    }

    #[test]
    fn addresses_and_durations_as_go_writes_them() {
        assert_eq!(addr(":8080").unwrap(), "0.0.0.0:8080".parse().unwrap());
        assert_eq!(addr("127.0.0.1:0").unwrap(), "127.0.0.1:0".parse().unwrap());
        assert!(addr("nowhere").is_err());
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("2m").unwrap(), Duration::from_secs(120));
        assert!(duration("5").is_err());
        assert!(duration("5 s").is_err());
        assert!(duration("s").is_err());
        assert!(duration("99999999999999999h").is_err());
        assert!(addr("localhost:0").unwrap().ip().is_loopback());
    }
}
