//! Command-line flags: parsed by clap, with Go's spellings accepted too, so that go-kit's addsvc
//! and addcli command lines work unchanged (`-http-addr :8081`, `-method=concat`) beside
//! clap's (`--http-addr :8081`); and the parsers for the values Go writes (`:8080`, `500ms`).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

/// Parses the command line `args` (with the program name) into `T`, Go's single-dash long
/// flags first spelt as clap's ([`go_style`]). On a bad command line, and for `-h` or
/// `--help`, prints what clap prints and exits as clap does (2, or 0 for help).
pub fn parse<T: clap::Parser>(args: impl IntoIterator<Item = OsString>) -> T {
    T::parse_from(go_style(args))
}

/// `args` with Go's single-dash long flags (`-http-addr`, `-log.format=json`) spelt as clap's
/// (`--http-addr`), up to a `--`. A single letter (`-h`), a negative number (`-5`) and `-`
/// alone are left as they are; so is the program name.
pub fn go_style(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args = args.into_iter();
    let mut out: Vec<OsString> = args.next().into_iter().collect();
    for arg in args.by_ref() {
        if arg == "--" {
            out.push(arg);
            break;
        }
        let long = arg.to_str().is_some_and(|a| {
            let name = a.strip_prefix('-').unwrap_or("");
            let name = name.split('=').next().unwrap_or("");
            !name.starts_with('-')
                && name.len() > 1
                && name.starts_with(|c: char| c.is_ascii_alphabetic())
        });
        if long {
            let mut spelt = OsString::from("-");
            spelt.push(&arg);
            out.push(spelt);
        } else {
            out.push(arg);
        }
    }
    out.extend(args);
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

/// An `http://` URL with a host (a Zipkin collector's spans endpoint, say).
pub fn http_url(value: &str) -> Result<http::Uri, String> {
    value
        .parse::<http::Uri>()
        .ok()
        .filter(|u| u.scheme_str() == Some("http") && u.host().is_some())
        .ok_or_else(|| format!("{value:?} is not an http:// URL"))
}

/// A count of at least one.
pub fn positive(value: &str) -> Result<u32, String> {
    value
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{value:?} is not a positive integer"))
}

/// go-kit's `-log.format`: `logfmt` or `json`; true for JSON.
pub fn json_logs(value: &str) -> Result<bool, String> {
    match value {
        "logfmt" => Ok(false),
        "json" => Ok(true),
        other => Err(format!("{other:?} is not logfmt or json")),
    }
}

/// A comma-separated list, blanks dropped: `-etcd-addr a:2379,b:2379`.
pub fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(s: &str) -> Vec<String> {
        go_style(
            std::iter::once("prog")
                .chain(s.split_whitespace())
                .map(OsString::from),
        )
        .into_iter()
        .skip(1)
        .map(|a| a.into_string().unwrap())
        .collect()
    }

    #[test]
    fn gos_single_dash_long_flags_are_spelt_as_claps() {
        assert_eq!(
            go("-http-addr :1 -method=concat --grpc-addr :2 a b"),
            [
                "--http-addr",
                ":1",
                "--method=concat",
                "--grpc-addr",
                ":2",
                "a",
                "b"
            ]
        );
        assert_eq!(go("-log.format json"), ["--log.format", "json"]);
        // Single letters, negative numbers, `-` alone, and everything after `--`.
        assert_eq!(go("-h -5 - -x"), ["-h", "-5", "-", "-x"]);
        assert_eq!(go("-- -method x"), ["--", "-method", "x"]);
    }

    #[test]
    fn values_as_go_writes_them() {
        assert_eq!(addr(":8080").unwrap(), "0.0.0.0:8080".parse().unwrap());
        assert_eq!(addr("127.0.0.1:0").unwrap(), "127.0.0.1:0".parse().unwrap());
        assert!(addr("nowhere").is_err());
        assert!(addr("localhost:0").unwrap().ip().is_loopback());
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("2m").unwrap(), Duration::from_secs(120));
        for bad in ["5", "5 s", "s", "99999999999999999h"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
        assert!(http_url("http://z:9411/api/v2/spans").is_ok());
        assert!(http_url("ftp://z/spans").is_err());
        assert_eq!(positive("3"), Ok(3));
        assert!(positive("0").is_err());
        assert_eq!(list(" a, ,b "), ["a", "b"]);
        assert_eq!(json_logs("json"), Ok(true));
        assert!(json_logs("xml").is_err());
    }
}
