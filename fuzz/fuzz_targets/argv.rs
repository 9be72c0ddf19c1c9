//! Fuzz target: any command line, run against a real ledger, ends in a contract error or success, never a panic or `internal`.

#![no_main]

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use wallet::cli::Cli;

/// One ledger per fuzzing process, with two funded users to act on.
fn ledger() -> &'static PathBuf {
    static LEDGER: OnceLock<PathBuf> = OnceLock::new();
    LEDGER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("wallet-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let db = dir.join("wallet.db");
        let _ = std::fs::remove_file(&db);
        for args in [
            &["create-user", "alice", "alice@example.com"][..],
            &["create-user", "bob", "bob@example.com"],
            &["deposit", "alice", "1000"],
            &["deposit", "bob", "10"],
            &["settle"],
        ] {
            wallet::commands::run(parse(&db, args.iter().map(OsString::from)).expect("setup"))
                .expect("setup");
        }
        db
    })
}

fn parse(db: &PathBuf, args: impl Iterator<Item = OsString>) -> Option<Cli> {
    let mut argv: Vec<OsString> = vec!["wallet".into(), "--db".into(), db.into()];
    argv.extend(args);
    Cli::try_parse_from(argv).ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // NUL cannot occur inside a real argument, so it separates them here.
    let args: Vec<&str> = text.split('\0').filter(|a| !a.is_empty()).collect();
    if args.iter().any(|a| a.starts_with("--db")) {
        return;
    }
    let db = ledger();
    let Some(cli) = parse(db, args.iter().map(OsString::from)) else {
        return;
    };
    if let Err(err) = wallet::commands::run(cli) {
        assert!((1..=7).contains(&err.exit_code()), "{args:?}: {err}");
        assert_ne!(err.code(), "internal", "{args:?}: {err}");
    }
});
