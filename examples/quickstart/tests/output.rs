//! The example is a test: its output is checked line by line.

use std::process::Command;

fn run(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .args(args)
        .output()
        .expect("run quickstart");
    assert!(
        out.status.success(),
        "quickstart exited with {}",
        out.status
    );
    (
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

#[test]
fn default_input() {
    let (stdout, stderr) = run(&[]);
    assert_eq!(
        stdout,
        "uppercase(\"hello, kit\") = HELLO, KIT\n\
         count(\"hello, kit\") = 10\n\
         uppercase(\"late\") failed: timeout: deadline exceeded\n"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "one log line per call: {stderr}");
    assert!(lines[0].starts_with("method=uppercase outcome=success err=\"\" took="));
    assert!(lines[1].starts_with("method=count outcome=success err=\"\" took="));
    assert!(
        lines[2].starts_with("method=uppercase outcome=failure err=\"deadline exceeded\" took=")
    );
}

#[test]
fn bad_input_is_an_error_and_the_rest_still_runs() {
    let long = "x".repeat(65);
    let (stdout, stderr) = run(&["", &long, "ünïcode"]);
    let expected = format!(
        "uppercase(\"\") failed: business: empty string\n\
         count(\"\") failed: business: empty string\n\
         uppercase({long:?}) failed: invalid_argument: string longer than 64 characters\n\
         count({long:?}) failed: invalid_argument: string longer than 64 characters\n\
         uppercase(\"ünïcode\") = ÜNÏCODE\n\
         count(\"ünïcode\") = 7\n\
         uppercase(\"late\") failed: timeout: deadline exceeded\n"
    );
    assert_eq!(stdout, expected);
    assert!(stderr.contains("method=count outcome=rejected err=\"empty string\""));
}
