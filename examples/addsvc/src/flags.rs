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

/// `args` as clap should read them, given as Go's `flag` package reads them: single-dash long
/// flags (`-http-addr`, `-log.format=json`) spelt as clap's (`--http-addr`); each flag's value
/// left as it is, even one that starts with a dash; and, as Go stops reading flags at the first
/// argument that is not one, a `--` before it (so `addcli -method concat a -b` concatenates
/// `a` and `-b`, and `addcli -5 -7` sums two negative numbers). Help and version flags take no
/// value; the program name is left as it is.
pub fn go_style(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args = args.into_iter();
    let mut out: Vec<OsString> = args.next().into_iter().collect();
    while let Some(arg) = args.next() {
        let text = arg.to_str().unwrap_or("");
        if text == "--" {
            out.push(arg);
            break;
        }
        let name = text
            .strip_prefix("--")
            .or_else(|| text.strip_prefix('-'))
            .filter(|n| n.starts_with(|c: char| c.is_ascii_alphabetic()));
        let Some(name) = name else {
            // An operand (a negative number among them): the flags are over.
            out.push("--".into());
            out.push(arg);
            break;
        };
        let (name, inline_value) = match name.split_once('=') {
            Some((name, _)) => (name, true),
            None => (name, false),
        };
        let spelt: OsString = if text.starts_with("--") || name.len() == 1 {
            arg.clone()
        } else {
            format!("-{text}").into()
        };
        out.push(spelt);
        let takes_no_value = matches!(name, "h" | "help" | "V" | "version");
        if !inline_value
            && !takes_no_value
            && let Some(value) = args.next()
        {
            out.push(value);
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

/// An `http://` URL with a host, or none when empty (`-zipkin-url ""`, Go's default).
#[derive(Clone, Debug, Default)]
pub struct MaybeUrl(pub Option<http::Uri>);

/// [`http_url`], or none for an empty value.
pub fn maybe_http_url(value: &str) -> Result<MaybeUrl, String> {
    match value {
        "" => Ok(MaybeUrl(None)),
        url => http_url(url).map(|u| MaybeUrl(Some(u))),
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
    fn command_lines_are_read_as_gos_flag_package_reads_them() {
        let cases: [(&str, &[&str]); 8] = [
            (
                "-http-addr :1 -method=concat --grpc-addr :2 a b",
                &[
                    "--http-addr",
                    ":1",
                    "--method=concat",
                    "--grpc-addr",
                    ":2",
                    "--",
                    "a",
                    "b",
                ],
            ),
            ("-log.format json", &["--log.format", "json"]),
            // A value that starts with a dash stays a value.
            ("-method -x 1", &["--method", "-x", "--", "1"]),
            // The flags end at the first operand: a negative number, `-`, or anything else.
            ("-5 -7", &["--", "-5", "-7"]),
            (
                "-method concat a -b",
                &["--method", "concat", "--", "a", "-b"],
            ),
            ("- -x", &["--", "-", "-x"]),
            // Help and version take no value; `--` is kept.
            ("-h -help 1", &["-h", "--help", "--", "1"]),
            ("-- -method x", &["--", "-method", "x"]),
        ];
        for (line, want) in cases {
            assert_eq!(go(line), want, "{line}");
        }
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
        assert!(maybe_http_url("").unwrap().0.is_none());
        assert!(maybe_http_url("ftp://z/spans").is_err());
        assert_eq!(positive("3"), Ok(3));
        assert!(positive("0").is_err());
        assert_eq!(list(" a, ,b "), ["a", "b"]);
        assert_eq!(json_logs("json"), Ok(true));
        assert!(json_logs("xml").is_err());
    }
}
