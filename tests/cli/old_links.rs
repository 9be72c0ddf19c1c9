//! The hash of a first link as an older version of wallet took it, written
//! out here from that version's encoding, apart from the code under test:
//! what a ledger sealed then holds, for the tests that check it still
//! verifies.

use sha2::{Digest, Sha256};

use crate::common::Sandbox;

/// What the version that sealed the link sealed besides transfers, and
/// the bounds the link recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sealed {
    /// Transfers only (before links sealed accounts).
    Transfers,
    /// Accounts up to `accounts_to` too (before policy changes).
    Accounts { accounts_to: i64 },
    /// Policy changes up to `changes_to` too (before currencies).
    Changes { accounts_to: i64, changes_to: i64 },
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.push(0),
        Some(bytes) => {
            out.push(1);
            field(out, bytes);
        }
    }
}

fn optional_number(out: &mut Vec<u8>, n: Option<i64>) {
    optional(out, n.map(i64::to_be_bytes).as_ref().map(|b| &b[..]));
}

fn number(text: &Option<String>) -> Option<i64> {
    text.as_deref().map(|n| n.parse().unwrap())
}

/// The id after `after` in `table`'s `column`, up to `to`, if any: one
/// row of an aggregate, read the same way on every engine.
fn next_id(s: &Sandbox, table: &str, column: &str, after: i64, to: i64) -> Option<i64> {
    number(&s.query_text(&format!(
        "SELECT CAST(min({column}) AS TEXT) FROM {table} WHERE {column} > {after} AND {column} <= {to}"
    ))[0])
}

/// What an old link's header held, and the bounds of the links before it.
struct OldHeader {
    seq: i64,
    first_tx: i64,
    last_tx: i64,
    excluded: Vec<i64>,
    late: Vec<i64>,
    /// `(after, to)`: the link seals ids in `(after, to]`.
    accounts: Option<(i64, i64)>,
    changes: Option<(i64, i64)>,
}

/// A transfer row as the old versions hashed it: every field once decided,
/// those fixed when queued while it can still change (tagged `q`).
fn transfer_row(s: &Sandbox, tx_id: i64, queued: bool) -> Vec<u8> {
    let row = s.query_text(&format!(
        "SELECT CAST(tx_id AS TEXT), CAST(src AS TEXT), CAST(dst AS TEXT),
                CAST(amount AS TEXT), CAST(created_at AS TEXT), status, reason, memo,
                idem_key, CAST(settled_at AS TEXT), CAST(hold_amount AS TEXT),
                CAST(expires_at AS TEXT), CAST(refund_of AS TEXT)
           FROM transfers WHERE tx_id = {tx_id}"
    ));
    let mut bytes = Vec::new();
    if queued {
        bytes.push(b'q');
        let amount = number(&row[10]).or(number(&row[3])).unwrap();
        for n in [&row[0], &row[1], &row[2]] {
            bytes.extend_from_slice(&number(n).unwrap().to_be_bytes());
        }
        bytes.extend_from_slice(&amount.to_be_bytes());
        bytes.extend_from_slice(&number(&row[4]).unwrap().to_be_bytes());
        for text in &row[7..9] {
            optional(&mut bytes, text.as_deref().map(str::as_bytes));
        }
        for n in &row[10..13] {
            optional_number(&mut bytes, number(n));
        }
        return bytes;
    }
    for n in &row[0..5] {
        bytes.extend_from_slice(&number(n).unwrap().to_be_bytes());
    }
    field(&mut bytes, row[5].as_deref().unwrap().as_bytes());
    for text in &row[6..9] {
        optional(&mut bytes, text.as_deref().map(str::as_bytes));
    }
    for n in &row[9..13] {
        optional_number(&mut bytes, number(n));
    }
    bytes
}

/// An old link's hash, chained from `prev`.
fn link_hash(s: &Sandbox, prev: &[u8], header: &OldHeader) -> [u8; 32] {
    let mut h = Sha256::new();
    match (header.accounts, header.changes) {
        (_, Some(_)) => h.update(b"wallet link v3\0"),
        (Some(_), None) => h.update(b"wallet link v2\0"),
        (None, None) => {}
    }
    h.update(prev);
    for n in [header.seq, header.first_tx, header.last_tx] {
        h.update(n.to_be_bytes());
    }
    for list in [&header.excluded, &header.late] {
        h.update((list.len() as u64).to_be_bytes());
        for id in list {
            h.update(id.to_be_bytes());
        }
    }
    match (header.accounts, header.changes) {
        (None, None) => {}
        (Some((_, accounts_to)), None) => h.update(accounts_to.to_be_bytes()),
        (accounts, Some((_, changes_to))) => {
            let mut bounds = Vec::new();
            optional_number(&mut bounds, accounts.map(|(_, to)| to));
            bounds.extend_from_slice(&changes_to.to_be_bytes());
            h.update(&bounds);
        }
    }
    for &tx_id in &header.late {
        h.update(transfer_row(s, tx_id, false));
    }
    let mut after = header.first_tx - 1;
    while let Some(tx_id) = next_id(s, "transfers", "tx_id", after, header.last_tx) {
        h.update(transfer_row(s, tx_id, header.excluded.contains(&tx_id)));
        after = tx_id;
    }
    if let Some((mut after, to)) = header.accounts {
        while let Some(id) = next_id(s, "accounts", "id", after, to) {
            let row = s.query_text(&format!(
                "SELECT CAST(id AS TEXT), CAST(created_at AS TEXT), name, email
                   FROM accounts WHERE id = {id}"
            ));
            let mut bytes = vec![b'a'];
            for n in &row[0..2] {
                bytes.extend_from_slice(&number(n).unwrap().to_be_bytes());
            }
            for text in &row[2..4] {
                optional(&mut bytes, text.as_deref().map(str::as_bytes));
            }
            h.update(&bytes);
            after = id;
        }
    }
    if let Some((mut after, to)) = header.changes {
        while let Some(change_id) = next_id(s, "policy_changes", "change_id", after, to) {
            let row = s.query_text(&format!(
                "SELECT CAST(change_id AS TEXT), CAST(account AS TEXT), CAST(at AS TEXT),
                        kind, CAST(overdraft AS TEXT), memo
                   FROM policy_changes WHERE change_id = {change_id}"
            ));
            let mut bytes = vec![b'p'];
            for n in &row[0..3] {
                bytes.extend_from_slice(&number(n).unwrap().to_be_bytes());
            }
            field(&mut bytes, row[3].as_deref().unwrap().as_bytes());
            optional_number(&mut bytes, number(&row[4]));
            optional(&mut bytes, row[5].as_deref().map(str::as_bytes));
            h.update(&bytes);
            after = change_id;
        }
    }
    h.finalize().into()
}

fn genesis(s: &Sandbox) -> [u8; 32] {
    let meta = s.query_text("SELECT currency, CAST(scale AS TEXT) FROM ledger_meta");
    let mut genesis = b"wallet chain v1\0".to_vec();
    field(&mut genesis, meta[0].as_deref().unwrap().as_bytes());
    genesis.push(meta[1].as_deref().unwrap().parse::<u8>().unwrap());
    Sha256::digest(&genesis).into()
}

fn hex(hash: &[u8]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Link 1's hash over the decided transfers `1..=last_tx` (no `excluded`
/// or `late` list), and over what `sealed` names, as the version that
/// sealed only that took it.
pub(crate) fn first_link_hash(s: &Sandbox, last_tx: i64, sealed: Sealed) -> String {
    let (accounts, changes) = match sealed {
        Sealed::Transfers => (None, None),
        Sealed::Accounts { accounts_to } => (Some((i64::MIN, accounts_to)), None),
        Sealed::Changes {
            accounts_to,
            changes_to,
        } => (Some((i64::MIN, accounts_to)), Some((i64::MIN, changes_to))),
    };
    let header = OldHeader {
        seq: 1,
        first_tx: i64::MIN + 1,
        last_tx,
        excluded: Vec::new(),
        late: Vec::new(),
        accounts,
        changes,
    };
    hex(&link_hash(s, &genesis(s), &header))
}

/// Rewrites every stored link's hash as the version before links sealed
/// currencies took it, from the bounds each link records (a ledger whose
/// links were sealed by this version, taken back to the schema before
/// currencies, then holds what that version would have sealed); returns
/// the last link's hash.
pub(crate) fn rehash_links_before_currencies(s: &Sandbox) -> String {
    let links = number(&s.query_text("SELECT CAST(count(*) AS TEXT) FROM chain_links")[0]).unwrap();
    let mut prev = genesis(s);
    let (mut accounts_after, mut changes_after) = (i64::MIN, i64::MIN);
    for seq in 1..=links {
        let row = s.query_text(&format!(
            "SELECT CAST(first_tx AS TEXT), CAST(last_tx AS TEXT), excluded, late,
                    CAST(accounts_to AS TEXT), CAST(changes_to AS TEXT)
               FROM chain_links WHERE seq = {seq}"
        ));
        let ids = |text: &Option<String>| -> Vec<i64> {
            text.as_deref()
                .unwrap_or("")
                .split_whitespace()
                .map(|id| id.parse().unwrap())
                .collect()
        };
        let accounts = number(&row[4]).map(|to| (accounts_after, to));
        let changes = number(&row[5]).map(|to| (changes_after, to));
        let header = OldHeader {
            seq,
            first_tx: number(&row[0]).unwrap(),
            last_tx: number(&row[1]).unwrap(),
            excluded: ids(&row[2]),
            late: ids(&row[3]),
            accounts,
            changes,
        };
        prev = link_hash(s, &prev, &header);
        s.tamper(&format!(
            "UPDATE chain_links SET hash = '{}' WHERE seq = {seq}",
            hex(&prev)
        ));
        accounts_after = accounts.map_or(accounts_after, |(_, to)| to);
        changes_after = changes.map_or(changes_after, |(_, to)| to);
    }
    hex(&prev)
}
