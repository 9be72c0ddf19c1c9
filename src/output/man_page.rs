//! Manual pages in roff, generated from the command line's definition:
//! clap_mangen's sections, and the exit statuses, environment and files
//! every page shares.

use clap::CommandFactory;
use clap_mangen::Man;
use roff::{Roff, bold, roman};

use crate::cli::Cli;
use crate::error::{Result, WalletError};

/// The page `wallet.1`, or `wallet-COMMAND.1` for a visible subcommand
/// (`wallet-currency-add.1` for one of a subcommand's own, named by its
/// path): its file name and its roff text.
pub(crate) fn page(path: &[String]) -> Result<(String, String)> {
    let mut cli = Cli::command().disable_help_subcommand(true);
    // Building gives subcommands their display names (`wallet-transfer`),
    // which the pages use for their titles and cross-references.
    cli.build();
    let mut cmd = cli;
    for name in path {
        let sub = cmd
            .get_subcommands()
            .find(|sub| sub.get_name() == name && !sub.is_hide_set())
            .cloned();
        cmd = sub.ok_or_else(|| {
            WalletError::Usage(format!("there is no manual page for '{}'", path.join(" ")))
        })?;
    }
    let examples = cmd.get_after_help().map(ToString::to_string);
    let has_subcommands = cmd.get_subcommands().any(|sub| !sub.is_hide_set());
    let man = Man::new(cmd).source(format!("wallet {}", env!("CARGO_PKG_VERSION")));
    let mut roff = Vec::new();
    render(&man, has_subcommands, examples.as_deref(), &mut roff).map_err(WalletError::internal)?;
    let roff = String::from_utf8(roff).map_err(WalletError::internal)?;
    Ok((man.get_filename(), roff))
}

/// clap_mangen's sections, with the examples in a section of their own:
/// its EXTRA section would fill them into one paragraph.
fn render(
    man: &Man,
    has_subcommands: bool,
    examples: Option<&str>,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    if has_subcommands {
        man.render_subcommands_section(out)?;
    }
    out.extend_from_slice(reference_sections().as_bytes());
    if let Some(examples) = examples {
        out.extend_from_slice(examples_section(examples).as_bytes());
    }
    man.render_version_section(out)
}

/// EXIT STATUS, ENVIRONMENT and FILES: the same for every page, since every
/// command shares them.
fn reference_sections() -> String {
    let mut page = Roff::new();
    let item = |page: &mut Roff, term: &str, text: &str| {
        page.control("TP", [])
            .text([bold(term)])
            .text([roman(text)]);
    };
    page.control("SH", ["EXIT STATUS"]);
    for (status, meaning) in [
        ("0", "Success."),
        (
            "1",
            "I/O or internal error (io_error, internal); nothing was written.",
        ),
        ("2", "Usage error (usage)."),
        (
            "3",
            "Not found (user_not_found, transfer_not_found, ledger_not_found).",
        ),
        (
            "4",
            "Conflict (user_exists, ledger_exists, idempotency_conflict, not_pending).",
        ),
        (
            "5",
            "Invalid input (invalid_amount, invalid_name, invalid_email, same_account, invalid_key, invalid_memo, invalid_currency, invalid_line, batch_failed).",
        ),
        (
            "6",
            "The ledger is busy past the lock timeout, or its PostgreSQL server unreachable (busy, server_unavailable); retry. Nothing was written, unless the message says what was: a settle or a batch that stopped part-way prints what its earlier transactions committed.",
        ),
        (
            "7",
            "The ledger is damaged, foreign, newer, or older than a read can use (not_a_ledger, schema_too_new, upgrade_needed, integrity); stop and run wallet verify or wallet migrate.",
        ),
        (
            "8",
            "The outcome is unknown (outcome_unknown): the change may have been written; look it up, or retry with the same --id.",
        ),
    ] {
        item(&mut page, status, meaning);
    }
    page.control("SH", ["ENVIRONMENT"]);
    for (name, meaning) in [
        (
            "WALLET_DB",
            "The ledger file when --db is not given (default wallet.db).",
        ),
        (
            "WALLET_LOCK_TIMEOUT",
            "Milliseconds to wait for another process's lock when --lock-timeout is not given (default 5000).",
        ),
        ("NO_COLOR", "When set, no colour, even on a terminal."),
        ("TERM", "When dumb, no colour."),
    ] {
        item(&mut page, name, meaning);
    }
    page.control("SH", ["FILES"]);
    for (name, meaning) in [
        (
            "wallet.db",
            "The ledger, an SQLite file (mode 0600), unless --db or WALLET_DB names another.",
        ),
        (
            "wallet.db-wal, wallet.db-shm",
            "Its write-ahead log and shared memory; they stay beside a ledger once written to. Copy or move them with it, and never beside another ledger.",
        ),
    ] {
        item(&mut page, name, meaning);
    }
    page.to_roff()
}

/// The `Examples:` help text as an EXAMPLES section, one command a line,
/// escaped by the `roff` crate (the one clap_mangen writes with).
fn examples_section(after_help: &str) -> String {
    let mut section = Roff::new();
    section.control("SH", ["EXAMPLES"]).control("nf", []);
    for line in after_help
        .lines()
        .filter(|line| !line.trim_end().ends_with(':'))
    {
        section.text([roman(line.trim())]);
    }
    section.control("fi", []).to_roff()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_become_one_unfilled_line_each() {
        let section = examples_section("Examples:\n  wallet a --x\n  .b 'c\\d'\n");
        assert_eq!(
            section,
            ".SH EXAMPLES\n.nf\nwallet a \\-\\-x\n\\&.b 'c\\\\d'\n.fi\n"
        );
    }

    #[test]
    fn every_visible_command_has_a_page_with_examples() {
        let (name, roff) = page(&[]).unwrap();
        assert_eq!(name, "wallet.1");
        assert!(roff.contains(".SH EXAMPLES"));
        assert!(roff.contains("wallet\\-transfer(1)"));
        let (name, roff) = page(&["transfer".to_string()]).unwrap();
        assert_eq!(name, "wallet-transfer.1");
        assert!(roff.contains("wallet transfer alice bob 25.50 \\-\\-id order\\-42"));
        assert!(
            page(&["man".to_string()]).is_err(),
            "hidden commands have no page"
        );
        for section in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH FILES"] {
            assert!(roff.contains(section), "{section}");
        }
        assert!(roff.contains("outcome_unknown") && roff.contains("WALLET_DB"));
    }
}
