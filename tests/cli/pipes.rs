//! Readers that go away: a script piping a read to `head` gets the lines it
//! wanted and an exit status of 0, whatever the format and however much
//! the command had left to print.

use std::process::Command;

use crate::common::Sandbox;

/// Runs `wallet ARGS | head -1` and returns wallet's exit status and
/// stderr, and the line `head` printed; bounded, so that a command that
/// never notices its reader left (a follower) fails instead of hanging.
pub(crate) fn piped_to_head(s: &Sandbox, args: &str) -> (String, String, String) {
    let script = format!(
        "'{}' --db '{}' {args} 2>stderr | head -1; echo \"${{PIPESTATUS[0]}}\" >status",
        env!("CARGO_BIN_EXE_wallet"),
        s.db().display()
    );
    let out = Command::new("timeout")
        .current_dir(s.dir.path())
        .args(["20", "bash", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let read = |name: &str| std::fs::read_to_string(s.dir.path().join(name)).unwrap();
    (
        read("status").trim().to_string(),
        read("stderr"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn every_read_ends_quietly_when_its_reader_goes_away() {
    let s = Sandbox::new();
    s.ok(&["create-user", "alice", "alice@example.com"]);
    s.ok(&["create-user", "bob", "bob@example.com"]);
    // Far more than a pipe's buffer holds in every format.
    let lines: String = (0..50_000)
        .map(|i| {
            format!(
                "{{\"src\":null,\"dst\":\"alice\",\"amount\":\"1.{:02}\"}}\n",
                i % 100
            )
        })
        .collect();
    std::fs::write(s.dir.path().join("lines.jsonl"), lines).unwrap();
    s.ok(&["--quiet", "transfer", "--batch", "lines.jsonl"]);
    for args in [
        "export --format csv",
        "export --format jsonl",
        "export --format hledger",
        "--json export --format csv",
        "history alice --limit 50000",
        "--json history alice --limit 50000",
    ] {
        let (status, stderr, first) = piped_to_head(&s, args);
        assert_eq!(status, "0", "{args}: exit {status}, stderr {stderr:?}");
        assert_eq!(stderr, "", "{args}");
        assert!(!first.is_empty(), "{args}: head printed a line");
    }
}

engine_tests! {
    both: [
        every_read_ends_quietly_when_its_reader_goes_away,
    ],
}
