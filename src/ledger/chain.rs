//! The tamper-evident log: a SHA-256 hash chain sealed over transfers once
//! they can no longer change.
//!
//! A link covers the transfers with `tx_id` in `(previous link's last_tx,
//! last_tx]`: those decided by every field, those that could still change
//! then (PENDING, or a live hold: its `excluded` list) by the fields fixed
//! when they were queued; their decision is sealed by the link that finds
//! them decided, in its `late` list. Which ids the chain still owes is read
//! from those lists alone ([`owe`]), never from a table an insider could
//! empty. A link also seals who each account is: those created since the
//! link before it (`accounts_to`), by id, name, email and creation time;
//! and the policy changes recorded since the link before it (`changes_to`),
//! by every field: a change is final when written, so none is left open;
//! and the currencies added since the link before it (`currencies_to`), by
//! id, code, scale and creation time, which also fixes the currency each
//! sealed transfer and limit is counted in. Its hash is taken over the
//! previous link's hash, its own header, every covered transfer's canonical
//! fields (its currency and exchange partner among them), in order, then its
//! accounts, then its policy changes, then its currencies; the first link's
//! "previous hash" is taken over the ledger's default currency and scale.
//! Every transfer lies in a link's range or in the open tail above the last
//! one: a row below the first link is a finding. Links are sealed after the fact, by one process at a time
//! (`settle` seals at its end), so no settle worker ever waits on the chain;
//! `verify` recomputes every link and counts what is not sealed yet.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::money::Currency;

/// At most this many transfers in one link: a broken link names a range
/// short enough to look through.
pub(crate) const LINK_MAX: i64 = 100_000;

pub(crate) type Hash = [u8; 32];

/// What a sealer reads before it takes any lock, to learn whether anything
/// waits, in the order of [`SealFacts`]. SQL both engines run.
pub(crate) const SEAL_FACTS: &str = "SELECT
        (SELECT last_tx FROM chain_links ORDER BY seq DESC LIMIT 1),
        (SELECT accounts_to FROM chain_links ORDER BY seq DESC LIMIT 1),
        (SELECT changes_to FROM chain_links ORDER BY seq DESC LIMIT 1),
        (SELECT currencies_to FROM chain_links ORDER BY seq DESC LIMIT 1),
        (SELECT max(tx_id) FROM transfers),
        (SELECT max(id) FROM accounts),
        (SELECT max(change_id) FROM policy_changes),
        (SELECT CAST(max(id) AS BIGINT) FROM currencies)";

/// The last link's bounds and the largest ids now, as [`SEAL_FACTS`] reads
/// them in its column order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SealFacts {
    pub last_tx: Option<i64>,
    pub accounts_to: Option<i64>,
    pub changes_to: Option<i64>,
    pub currencies_to: Option<i64>,
    pub max_tx: Option<i64>,
    pub max_account: Option<i64>,
    pub max_change: Option<i64>,
    pub max_currency: Option<i64>,
}

/// The links whose lists say what the chain owes, in order: those with an
/// empty `excluded` and `late` change nothing, and are most links.
pub(crate) const OWING_LINKS: &str = "SELECT seq, first_tx, last_tx, excluded, late
        FROM chain_links WHERE excluded <> '' OR late <> '' ORDER BY seq";

/// Whether anything waits to be sealed: a transfer queued after the last
/// link, an id the chain owes that is decided now (`decided_owed`), an
/// account created since the last link sealed accounts (every account, when
/// none did), a policy change recorded since the last link sealed them
/// (every change, when none did), or a currency added since the last link
/// sealed currencies (every currency, when none did). Asked before a sealer
/// takes any lock, so that a `settle` with nothing new (a watch worker
/// between batches) locks nothing.
pub(crate) fn anything_to_seal(facts: &SealFacts, decided_owed: bool) -> bool {
    let above = |max: Option<i64>, sealed: Option<i64>| {
        max.is_some_and(|max| sealed.is_none_or(|to| max > to))
    };
    above(facts.max_tx, facts.last_tx)
        || above(facts.max_account, facts.accounts_to)
        || above(facts.max_change, facts.changes_to)
        || above(facts.max_currency, facts.currencies_to)
        || decided_owed
}

/// The ids the chain still owes (left open by a link, sealed by none since),
/// each with the link that left it open.
pub(crate) type Owed = BTreeMap<i64, i64>;

/// Folds one link's lists into what the chain owes: its `excluded` ids are
/// owed from now on, its `late` ones are paid. A link that pays an id no
/// earlier link left open, leaves one open twice, or leaves open one outside
/// its range is broken (the reason is returned, `owed` left as it was).
pub(crate) fn owe(owed: &mut Owed, header: &LinkHeader) -> Result<(), String> {
    if let Some(id) = header.late.iter().find(|id| !owed.contains_key(id)) {
        return Err(format!(
            "it seals the decision of transfer {id}, which no earlier link left open"
        ));
    }
    if let Some(id) = header.excluded.iter().find(|id| owed.contains_key(id)) {
        return Err(format!(
            "it leaves transfer {id} open again, still open since link {}",
            owed[id]
        ));
    }
    let lower = header.first_tx.saturating_sub(1);
    if let Some(id) = header
        .excluded
        .iter()
        .find(|&&id| id <= lower || id > header.last_tx)
    {
        return Err(format!("it leaves open transfer {id}, outside its range"));
    }
    for id in &header.late {
        owed.remove(id);
    }
    for id in &header.excluded {
        owed.insert(*id, header.seq);
    }
    Ok(())
}

/// What the chain owes after `links` (in order), or the first link whose
/// lists do not fold, with why.
pub(crate) fn owed_after<'a>(
    links: impl IntoIterator<Item = &'a LinkHeader>,
) -> Result<Owed, (i64, String)> {
    let mut owed = Owed::new();
    for header in links {
        owe(&mut owed, header).map_err(|why| (header.seq, why))?;
    }
    Ok(owed)
}

/// The rows of a table a link seals by id (accounts, policy changes,
/// currencies): ids in `(after, to]`, every id up to `to` when no earlier
/// link sealed any of that table (`after` is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdRange {
    pub after: Option<i64>,
    pub to: i64,
}

impl IdRange {
    /// Whether the range holds any id.
    fn is_due(self) -> bool {
        self.after.is_none_or(|after| self.to > after)
    }

    /// The range as inclusive bounds, for SQL.
    pub(crate) fn bounds(self) -> (i64, i64) {
        (
            self.after.map_or(i64::MIN, |a| a.saturating_add(1)),
            self.to,
        )
    }
}

/// The ids of a table the next link seals, given the last link's bound for
/// it (`accounts_to`, `changes_to`, `currencies_to`) and the largest id
/// now: never below what a link sealed already, so that a link with no new
/// row seals an empty range.
pub(crate) fn next_range(after: Option<i64>, max: Option<i64>) -> IdRange {
    let to = match (after, max) {
        (Some(after), Some(max)) => after.max(max),
        (Some(after), None) => after,
        (None, Some(max)) => max,
        (None, None) => i64::MIN,
    };
    IdRange { after, to }
}

/// What a link seals besides transfers: `None` for a table the link's kind
/// does not seal (a link from before links sealed it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ranges {
    pub accounts: Option<IdRange>,
    pub changes: Option<IdRange>,
    pub currencies: Option<IdRange>,
}

/// Whether the next link has anything to seal: new transfers (its range
/// `(start, end]` is not empty), decisions of transfers it owes, accounts,
/// policy changes or currencies.
pub(crate) fn link_due(start: i64, end: i64, late: &[i64], ranges: Ranges) -> bool {
    end > start
        || !late.is_empty()
        || [ranges.accounts, ranges.changes, ranges.currencies]
            .into_iter()
            .flatten()
            .any(IdRange::is_due)
}

/// The smallest `tx_id` the chain accounts for: every row below the first
/// link's range lies outside every link (a link's range starts where the one
/// before it ended, and rows above the last link are the open tail).
pub(crate) fn first_covered(links: &[StoredLink]) -> Option<i64> {
    links.first().map(|link| link.header.first_tx)
}

/// The last `tx_id` the next link covers: everything queued so far, at most
/// [`LINK_MAX`] transfers past the head (`last`, `i64::MIN` before the first
/// link, which starts at the smallest id).
pub(crate) fn link_end(last: i64, min_tx: i64, max_tx: i64) -> i64 {
    let cap = if last == i64::MIN {
        min_tx.saturating_add(LINK_MAX - 1)
    } else {
        last.saturating_add(LINK_MAX)
    };
    max_tx.min(cap)
}

/// The hash the first link chains from: the ledger's currency and scale.
pub(crate) fn genesis(currency: &Currency) -> Hash {
    let mut bytes = b"wallet chain v1\0".to_vec();
    field(&mut bytes, currency.code.as_bytes());
    bytes.push(currency.scale);
    Sha256::digest(&bytes).into()
}

/// A transfer's fields as a link hashes them (account ids, not names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sealed<'r> {
    pub tx_id: i64,
    pub src: i64,
    pub dst: i64,
    pub amount: i64,
    pub status: &'r str,
    pub reason: Option<&'r str>,
    pub memo: Option<&'r str>,
    pub key: Option<&'r str>,
    pub created_at: i64,
    pub settled_at: Option<i64>,
    pub hold_amount: Option<i64>,
    pub expires_at: Option<i64>,
    pub refund_of: Option<i64>,
    /// The id of the currency it moves; hashed from [`LINK_WITH_CURRENCIES`]
    /// on.
    pub currency: i64,
    /// The other leg of an exchange; hashed from [`LINK_WITH_CURRENCIES`]
    /// on.
    pub pair_tx_id: Option<i64>,
}

/// Which transfers a link covers, besides its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkHeader {
    pub seq: i64,
    /// The covered range is `(first_tx - 1, last_tx]`.
    pub first_tx: i64,
    pub last_tx: i64,
    /// Transfers of the range left for a later link (HELD when sealed).
    pub excluded: Vec<i64>,
    /// Transfers of earlier ranges, excluded then, sealed by this link.
    pub late: Vec<i64>,
    /// The largest account id sealed by this link or one before it; `None`
    /// in a link sealed before links sealed accounts, which hashes as then.
    pub accounts_to: Option<i64>,
    /// The largest `change_id` sealed by this link or one before it; `None`
    /// in a link sealed before links sealed policy changes, which hashes as
    /// then.
    pub changes_to: Option<i64>,
    /// The largest currency id sealed by this link or one before it; `None`
    /// in a link sealed before links sealed currencies, which hashes as
    /// then, without any transfer's or policy change's currency.
    pub currencies_to: Option<i64>,
}

/// An account's identity as a link hashes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SealedAccount {
    pub id: i64,
    pub name: Option<String>,
    pub email: Option<String>,
    pub created_at: i64,
}

/// A policy change as a link hashes it: every column of its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SealedChange {
    pub change_id: i64,
    pub account: i64,
    pub kind: String,
    pub overdraft: Option<i64>,
    pub memo: Option<String>,
    pub at: i64,
    /// The currency of an overdraft limit; hashed from
    /// [`LINK_WITH_CURRENCIES`] on.
    pub currency: i64,
}

/// A currency as a link hashes it: every column of its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SealedCurrency {
    pub id: i64,
    pub code: String,
    pub scale: i64,
    pub created_at: i64,
}

/// Marks a link that seals accounts, before anything else it hashes, so
/// that no such link hashes like one sealed before accounts were.
const LINK_WITH_ACCOUNTS: &[u8] = b"wallet link v2\0";

/// Marks a link that seals policy changes, in place of
/// [`LINK_WITH_ACCOUNTS`], so that no such link hashes like one sealed
/// before policy changes were.
const LINK_WITH_CHANGES: &[u8] = b"wallet link v3\0";

/// Marks a link that seals currencies, and the currency and exchange
/// partner of each transfer and the currency of each policy change, in
/// place of [`LINK_WITH_CHANGES`]: no such link hashes like one sealed
/// before, and no link sealed before hashes a field it did not have.
const LINK_WITH_CURRENCIES: &[u8] = b"wallet link v4\0";

/// Hashes one link, fed its transfers in order (the late ones, then those
/// of its range), then its accounts by id, then its policy changes by id,
/// then its currencies by id.
pub(crate) struct LinkHasher {
    h: Sha256,
    /// One row's encoding, reused: the hash takes a row in one call rather
    /// than a call per field, which cost more than the hashing itself.
    row: Vec<u8>,
    /// Whether rows carry their currency (a link with `currencies_to`).
    with_currencies: bool,
    pub count: i64,
    pub accounts: i64,
    pub changes: i64,
    pub currencies: i64,
}

impl LinkHasher {
    pub(crate) fn new(prev: &Hash, header: &LinkHeader) -> Self {
        let mut h = Sha256::new();
        if header.currencies_to.is_some() {
            h.update(LINK_WITH_CURRENCIES);
        } else if header.changes_to.is_some() {
            h.update(LINK_WITH_CHANGES);
        } else if header.accounts_to.is_some() {
            h.update(LINK_WITH_ACCOUNTS);
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
        match (header.changes_to, header.currencies_to) {
            (_, Some(currencies_to)) => {
                // Every bound, the first two told apart when absent, as in
                // a link with policy changes.
                let mut bounds = Vec::with_capacity(26);
                for bound in [header.accounts_to, header.changes_to] {
                    optional(
                        &mut bounds,
                        bound.map(i64::to_be_bytes).as_ref().map(|b| &b[..]),
                    );
                }
                bounds.extend_from_slice(&currencies_to.to_be_bytes());
                h.update(&bounds);
            }
            (None, None) => {
                if let Some(to) = header.accounts_to {
                    h.update(to.to_be_bytes());
                }
            }
            (Some(changes_to), None) => {
                // Both bounds, the first told apart when absent: such a
                // link is only ever sealed with accounts, but one stored
                // without them must still hash as a value of its own.
                let mut bounds = Vec::with_capacity(17);
                optional(
                    &mut bounds,
                    header
                        .accounts_to
                        .map(i64::to_be_bytes)
                        .as_ref()
                        .map(|b| &b[..]),
                );
                bounds.extend_from_slice(&changes_to.to_be_bytes());
                h.update(&bounds);
            }
        }
        Self {
            h,
            row: Vec::with_capacity(256),
            with_currencies: header.currencies_to.is_some(),
            count: 0,
            accounts: 0,
            changes: 0,
            currencies: 0,
        }
    }

    /// A currency the link seals, after its policy changes.
    pub(crate) fn add_currency(&mut self, c: &SealedCurrency) {
        self.currencies += 1;
        let row = &mut self.row;
        row.clear();
        row.push(b'c');
        for n in [c.id, c.scale, c.created_at] {
            row.extend_from_slice(&n.to_be_bytes());
        }
        field(row, c.code.as_bytes());
        self.h.update(&self.row);
    }

    /// What a link with currencies appends to a transfer's row: its
    /// currency and exchange partner, fixed when it was queued.
    fn add_currency_fields(with_currencies: bool, row: &mut Vec<u8>, t: &Sealed) {
        if with_currencies {
            row.extend_from_slice(&t.currency.to_be_bytes());
            optional(
                row,
                t.pair_tx_id.map(i64::to_be_bytes).as_ref().map(|b| &b[..]),
            );
        }
    }

    /// A policy change the link seals, after its accounts.
    pub(crate) fn add_change(&mut self, c: &SealedChange) {
        self.changes += 1;
        let row = &mut self.row;
        row.clear();
        row.push(b'p');
        for n in [c.change_id, c.account, c.at] {
            row.extend_from_slice(&n.to_be_bytes());
        }
        field(row, c.kind.as_bytes());
        optional(
            row,
            c.overdraft.map(i64::to_be_bytes).as_ref().map(|b| &b[..]),
        );
        optional(row, c.memo.as_deref().map(str::as_bytes));
        if self.with_currencies {
            row.extend_from_slice(&c.currency.to_be_bytes());
        }
        self.h.update(&self.row);
    }

    /// An account the link seals, after its transfers.
    pub(crate) fn add_account(&mut self, a: &SealedAccount) {
        self.accounts += 1;
        let row = &mut self.row;
        row.clear();
        row.push(b'a');
        for n in [a.id, a.created_at] {
            row.extend_from_slice(&n.to_be_bytes());
        }
        for text in [&a.name, &a.email] {
            optional(row, text.as_deref().map(str::as_bytes));
        }
        self.h.update(&self.row);
    }

    pub(crate) fn add(&mut self, t: &Sealed) {
        self.count += 1;
        let row = &mut self.row;
        row.clear();
        for n in [t.tx_id, t.src, t.dst, t.amount, t.created_at] {
            row.extend_from_slice(&n.to_be_bytes());
        }
        field(row, t.status.as_bytes());
        for text in [&t.reason, &t.memo, &t.key] {
            optional(row, text.as_deref().map(str::as_bytes));
        }
        for n in [t.settled_at, t.hold_amount, t.expires_at, t.refund_of] {
            optional(row, n.map(i64::to_be_bytes).as_ref().map(|b| &b[..]));
        }
        Self::add_currency_fields(self.with_currencies, row, t);
        self.h.update(&self.row);
    }

    /// A transfer that can still change (PENDING, or a live hold), by the
    /// fields fixed when it was queued; its decision is sealed by a later
    /// link, in its `late` list.
    pub(crate) fn add_queued(&mut self, t: &Sealed) {
        self.count += 1;
        let row = &mut self.row;
        row.clear();
        row.push(b'q');
        for n in [
            t.tx_id,
            t.src,
            t.dst,
            t.hold_amount.unwrap_or(t.amount),
            t.created_at,
        ] {
            row.extend_from_slice(&n.to_be_bytes());
        }
        for text in [&t.memo, &t.key] {
            optional(row, text.as_deref().map(str::as_bytes));
        }
        for n in [t.hold_amount, t.expires_at, t.refund_of] {
            optional(row, n.map(i64::to_be_bytes).as_ref().map(|b| &b[..]));
        }
        Self::add_currency_fields(self.with_currencies, row, t);
        self.h.update(&self.row);
    }

    pub(crate) fn finish(self) -> Hash {
        self.h.finalize().into()
    }
}

/// A length-prefixed field, so that no two different rows hash alike.
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

pub(crate) fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn from_hex(text: &str) -> Option<Hash> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Ids as a link row stores them: space-separated, in order.
pub(crate) fn ids_to_text(ids: &[i64]) -> String {
    ids.iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn ids_from_text(text: &str) -> Vec<i64> {
    text.split_whitespace()
        .filter_map(|id| id.parse().ok())
        .collect()
}

/// A link as stored.
#[derive(Debug, Clone)]
pub(crate) struct StoredLink {
    pub header: LinkHeader,
    pub count: i64,
    pub hash: String,
}

/// The chain's head: the last link that matches what it seals, which
/// `verify --head` prints and a later `--expect-head` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The link's hash, 64 hex digits.
    pub hash: String,
    /// The link's number, from 1.
    pub seq: i64,
    /// The last `tx_id` the chain seals up to this link.
    pub last_tx: i64,
}

/// The first link that does not match what it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    pub first_tx: i64,
    pub last_tx: i64,
    pub why: String,
}

/// What `verify` learns of the chain, and `verify --head` prints.
#[derive(Debug, Clone, Default)]
pub struct ChainState {
    pub links: i64,
    pub head: Option<Head>,
    pub sealed: i64,
    pub unsealed: i64,
    pub broken: Option<BrokenLink>,
    /// Every recomputed hash up to the first broken link, for
    /// `--expect-head`.
    pub good_hashes: Vec<String>,
    /// Why the ledger has no chain yet (a schema older than the chain).
    pub unavailable: Option<String>,
    /// What the links up to the first broken one leave owed.
    pub owed: Owed,
    /// Owed ids whose row is gone, each with the link that left it open.
    pub gone: Vec<(i64, i64)>,
    /// Transfers below the first link's range, which no link accounts for.
    pub outside: Vec<i64>,
    /// The last `accounts_to` of the links that match.
    pub accounts_to: Option<i64>,
    /// Accounts created after the last link that sealed accounts.
    pub unsealed_accounts: i64,
    /// The last `changes_to` of the links that match.
    pub changes_to: Option<i64>,
    /// Policy changes recorded after the last link that sealed them.
    pub unsealed_changes: i64,
    /// The last `currencies_to` of the links that match.
    pub currencies_to: Option<i64>,
    /// Currencies added after the last link that sealed currencies.
    pub unsealed_currencies: i64,
}

impl ChainState {
    /// Takes in the owed ids the engine found no row for.
    pub(crate) fn owed_rows_found(&mut self, found: &[i64]) {
        self.gone = self
            .owed
            .iter()
            .filter(|(id, _)| !found.contains(id))
            .map(|(&id, &seq)| (id, seq))
            .collect();
    }
}

/// The range a link seals of one table, given its bound for it and the last
/// bound of the links before it (`after`), or `Err` when it does not follow
/// them: a bound below theirs, or none once a link had one.
fn follows(to: Option<i64>, after: Option<i64>) -> Result<Option<IdRange>, ()> {
    match to {
        Some(to) if after.is_none_or(|after| to >= after) => Ok(Some(IdRange { after, to })),
        None if after.is_none() => Ok(None),
        _ => Err(()),
    }
}

/// Recomputes `links` in order, each from what `cover` feeds its hasher
/// (its transfers, then the accounts, policy changes and currencies of the
/// ranges it is given; it returns the late ids it could not find), folds
/// what each leaves owed, and stops at the first that does not match. The
/// engine adds what is not sealed yet, and what lies outside every link.
pub(crate) fn walk<E>(
    links: &[StoredLink],
    currency: &Currency,
    mut cover: impl FnMut(&LinkHeader, Ranges, &mut LinkHasher) -> Result<Vec<i64>, E>,
) -> Result<ChainState, E> {
    let mut state = ChainState {
        links: links.len() as i64,
        ..ChainState::default()
    };
    let mut prev = genesis(currency);
    let mut expected_first = i64::MIN;
    let mut owed = Owed::new();
    let mut accounts_after: Option<i64> = None;
    let mut changes_after: Option<i64> = None;
    let mut currencies_after: Option<i64> = None;
    for (i, link) in links.iter().enumerate() {
        let h = &link.header;
        let mut why = None;
        if h.seq != i as i64 + 1 || (i > 0 && h.first_tx != expected_first) {
            why = Some("the links before it are missing or out of order".to_string());
        }
        let accounts = follows(h.accounts_to, accounts_after).unwrap_or_else(|()| {
            why.get_or_insert_with(|| {
                "its accounts do not follow those of the link before it".to_string()
            });
            None
        });
        let changes = follows(h.changes_to, changes_after).unwrap_or_else(|()| {
            why.get_or_insert_with(|| {
                "its policy changes do not follow those of the link before it".to_string()
            });
            None
        });
        let currencies = follows(h.currencies_to, currencies_after).unwrap_or_else(|()| {
            why.get_or_insert_with(|| {
                "its currencies do not follow those of the link before it".to_string()
            });
            None
        });
        if why.is_none() {
            why = owe(&mut owed, h).err();
        }
        let mut hasher = LinkHasher::new(&prev, h);
        let ranges = Ranges {
            accounts,
            changes,
            currencies,
        };
        let missing = cover(h, ranges, &mut hasher)?;
        let (count, account_count, change_count, currency_count) = (
            hasher.count,
            hasher.accounts,
            hasher.changes,
            hasher.currencies,
        );
        let recomputed = hex(&hasher.finish());
        if why.is_none() && !missing.is_empty() {
            why = Some(format!("transfer {} it sealed is gone", missing[0]));
        }
        if why.is_none() && recomputed != link.hash {
            let what = match (h.accounts_to, h.changes_to, h.currencies_to) {
                (None, None, None) => format!("its {count} transfers"),
                (Some(_), None, None) => {
                    format!("its {count} transfers or its {account_count} accounts")
                }
                (_, Some(_), None) => format!(
                    "its {count} transfers, its {account_count} accounts or its {change_count} policy changes"
                ),
                (_, _, Some(_)) => format!(
                    "its {count} transfers, its {account_count} accounts, its {change_count} policy changes or its {currency_count} currencies"
                ),
            };
            why = Some(format!(
                "{what} (or the ledger's currency and scale, for the first) differ from what was sealed ({} then)",
                link.count
            ));
        }
        if let Some(why) = why {
            state.broken = Some(BrokenLink {
                seq: h.seq,
                first_tx: h.first_tx,
                last_tx: h.last_tx,
                why,
            });
            break;
        }
        state.good_hashes.push(recomputed);
        state.sealed += count;
        state.head = Some(Head {
            hash: link.hash.clone(),
            seq: h.seq,
            last_tx: h.last_tx,
        });
        prev = from_hex(&link.hash).unwrap_or([0; 32]);
        expected_first = h.last_tx.saturating_add(1);
        accounts_after = h.accounts_to.or(accounts_after);
        changes_after = h.changes_to.or(changes_after);
        currencies_after = h.currencies_to.or(currencies_after);
    }
    state.owed = owed;
    state.accounts_to = accounts_after;
    state.changes_to = changes_after;
    state.currencies_to = currencies_after;
    Ok(state)
}

/// The name of `verify`'s check of the chain.
pub(crate) const CHAIN_CHECK: &str = "chain";

/// `verify`'s check of the chain: every sealed link matches what it covers
/// (the first that does not is named, with its `tx_id` range), and how much
/// is not sealed yet.
pub(crate) fn check(state: &ChainState) -> crate::ledger::model::Check {
    use crate::ledger::model::{Findings, Problem};
    let mut findings = Findings::default();
    if let Some(BrokenLink {
        seq,
        first_tx: first,
        last_tx: last,
        why,
    }) = &state.broken
    {
        let range = if *first == i64::MIN + 1 {
            format!("transfers up to {last}")
        } else {
            format!("transfers {first}–{last}")
        };
        findings.push(Problem {
            user: None,
            // The first link's range starts below every id: no one transfer.
            tx_id: Some(*first).filter(|first| *first > 0),
            message: format!("link {seq} of the hash chain ({range}) is broken: {why}"),
        });
    }
    for &(id, seq) in &state.gone {
        findings.push(Problem {
            user: None,
            tx_id: Some(id).filter(|id| *id > 0),
            message: format!("transfer {id}, left open by link {seq} of the hash chain, is gone"),
        });
    }
    for &id in &state.outside {
        findings.push(Problem {
            user: None,
            tx_id: Some(id).filter(|id| *id > 0),
            message: format!("transfer {id} lies outside every link of the hash chain"),
        });
    }
    if let Some(why) = &state.unavailable {
        return findings.into_check(CHAIN_CHECK, why.clone());
    }
    let detail = match (&state.broken, &state.head) {
        (Some(BrokenLink { seq, .. }), _) => format!(
            "{}; link {seq} and every link after it no longer match what they seal",
            counted(state.links, "link")
        ),
        (None, head) => match head {
            Some(Head { last_tx, .. }) => format!(
                "{} seal{} {} up to tx_id {last_tx} (`verify --head` prints the head); {} not sealed yet",
                counted(state.links, "link"),
                if state.links == 1 { "s" } else { "" },
                counted(state.sealed, "transfer"),
                state.unsealed
            ),
            None => format!(
                "no link sealed yet; {} not sealed yet",
                counted(state.unsealed, "transfer")
            ),
        },
    };
    let detail = match state.unsealed_accounts {
        0 => detail,
        n => format!("{detail}; {} not sealed yet", counted(n, "account")),
    };
    let detail = match state.unsealed_changes {
        0 => detail,
        n => format!("{detail}; {} not sealed yet", counted(n, "policy change")),
    };
    let detail = match state.unsealed_currencies {
        0 => detail,
        n => format!(
            "{detail}; {} not sealed yet",
            if n == 1 {
                "1 currency".to_string()
            } else {
                format!("{n} currencies")
            }
        ),
    };
    findings.into_check(CHAIN_CHECK, detail)
}

/// `n` and the noun, plural unless `n` is 1.
fn counted(n: i64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(tx_id: i64, amount: i64) -> Sealed<'static> {
        Sealed {
            tx_id,
            src: 1,
            dst: 2,
            amount,
            status: "COMPLETED",
            reason: None,
            memo: Some("m"),
            key: None,
            created_at: 5,
            settled_at: Some(6),
            hold_amount: None,
            expires_at: None,
            refund_of: None,
            currency: 0,
            pair_tx_id: None,
        }
    }

    fn link(prev: &Hash, rows: &[Sealed]) -> Hash {
        let header = LinkHeader {
            seq: 1,
            first_tx: 1,
            last_tx: 10,
            excluded: vec![],
            late: vec![],
            accounts_to: None,
            changes_to: None,
            currencies_to: None,
        };
        let mut h = LinkHasher::new(prev, &header);
        for row in rows {
            h.add(row);
        }
        h.finish()
    }

    #[test]
    fn any_change_of_a_field_or_the_scale_changes_the_hash() {
        let php2 = genesis(&Currency::default());
        let php0 = genesis(&Currency {
            code: "PHP".into(),
            scale: 0,
        });
        assert_ne!(php2, php0);
        let base = link(&php2, &[sealed(1, 100), sealed(2, 5)]);
        assert_eq!(base, link(&php2, &[sealed(1, 100), sealed(2, 5)]));
        assert_ne!(base, link(&php0, &[sealed(1, 100), sealed(2, 5)]));
        assert_ne!(base, link(&php2, &[sealed(1, 101), sealed(2, 5)]));
        assert_ne!(base, link(&php2, &[sealed(1, 100)]));
        let mut memo = sealed(2, 5);
        memo.memo = None;
        assert_ne!(base, link(&php2, &[sealed(1, 100), memo]));
        assert_eq!(from_hex(&hex(&base)), Some(base));
    }

    fn header(seq: i64, first_tx: i64, last_tx: i64, excluded: &[i64], late: &[i64]) -> LinkHeader {
        LinkHeader {
            seq,
            first_tx,
            last_tx,
            excluded: excluded.to_vec(),
            late: late.to_vec(),
            accounts_to: None,
            changes_to: None,
            currencies_to: None,
        }
    }

    /// A link sealed before links sealed accounts hashes as it did then: a
    /// hash recorded by that version, pinned.
    #[test]
    fn a_link_without_accounts_hashes_as_before_accounts_were_sealed() {
        let prev = genesis(&Currency::default());
        assert_eq!(
            hex(&prev),
            "d5961c6100d7708191d45d1dab054550d741f3f4ca505f533ac0466657eb1834"
        );
        let mut row = sealed(1, 500);
        row.memo = Some("rent");
        row.key = Some("k-1");
        let mut hasher = LinkHasher::new(&prev, &header(2, 3, 9, &[5], &[1]));
        hasher.add(&row);
        row.tx_id = 5;
        row.status = "HELD";
        row.hold_amount = Some(700);
        row.expires_at = Some(99);
        row.settled_at = None;
        hasher.add_queued(&row);
        assert_eq!(
            hex(&hasher.finish()),
            "816c74693a56b9b691c5c20dac7db251c8faacac3d2d072403a9d74d83feb11a"
        );
    }

    fn account(id: i64, name: &str) -> SealedAccount {
        SealedAccount {
            id,
            name: Some(name.into()),
            email: Some(format!("{name}@example.com")),
            created_at: 7,
        }
    }

    fn with_accounts(accounts: &[SealedAccount]) -> Hash {
        let mut h = header(1, 1, 10, &[], &[]);
        h.accounts_to = Some(2);
        let mut hasher = LinkHasher::new(&genesis(&Currency::default()), &h);
        hasher.add(&sealed(1, 100));
        for a in accounts {
            hasher.add_account(a);
        }
        hasher.finish()
    }

    #[test]
    fn who_an_account_is_is_part_of_its_link() {
        let base = with_accounts(&[account(1, "alice"), account(2, "mallory")]);
        let mut swapped = [account(1, "mallory"), account(2, "alice")];
        assert_ne!(base, with_accounts(&swapped));
        swapped[0].email = Some("alice@example.com".into());
        swapped[1].email = Some("mallory@example.com".into());
        assert_ne!(base, with_accounts(&swapped));
        let mut later = account(2, "mallory");
        later.created_at = 8;
        assert_ne!(base, with_accounts(&[account(1, "alice"), later]));
        assert_ne!(base, with_accounts(&[account(1, "alice")]));
        let without = link(&genesis(&Currency::default()), &[sealed(1, 100)]);
        assert_ne!(
            with_accounts(&[]),
            without,
            "a link with accounts is told apart"
        );
    }

    #[test]
    fn what_the_chain_owes_comes_from_its_links_alone() {
        let links = [
            header(1, 1, 10, &[3, 7], &[]),
            header(2, 11, 20, &[12], &[3]),
            header(3, 21, 20, &[], &[7, 12]),
        ];
        let owed = owed_after(&links[..2]).unwrap();
        assert_eq!(owed.into_iter().collect::<Vec<_>>(), [(7, 1), (12, 2)]);
        assert!(owed_after(&links).unwrap().is_empty());
        let never_left_open = [header(1, 1, 10, &[], &[4])];
        let (seq, why) = owed_after(&never_left_open).unwrap_err();
        assert_eq!(seq, 1);
        assert!(why.contains("transfer 4"), "{why}");
        let twice = [header(1, 1, 10, &[3], &[]), header(2, 11, 20, &[3], &[])];
        assert_eq!(owed_after(&twice).unwrap_err().0, 2);
        let outside = [header(1, 1, 10, &[11], &[])];
        assert_eq!(owed_after(&outside).unwrap_err().0, 1);
        let paid_twice = [
            header(1, 1, 10, &[3], &[]),
            header(2, 11, 20, &[], &[3]),
            header(3, 21, 30, &[], &[3]),
        ];
        assert_eq!(owed_after(&paid_twice).unwrap_err().0, 3);
    }

    fn facts(
        (last_tx, max_tx): (Option<i64>, Option<i64>),
        (accounts_to, max_account): (Option<i64>, Option<i64>),
        (changes_to, max_change): (Option<i64>, Option<i64>),
    ) -> SealFacts {
        SealFacts {
            last_tx,
            accounts_to,
            changes_to,
            currencies_to: Some(0),
            max_tx,
            max_account,
            max_change,
            max_currency: Some(0),
        }
    }

    #[test]
    fn a_seal_is_due_for_new_transfers_decisions_accounts_or_policy_changes() {
        let sealed = (Some(2), Some(2));
        let none = (None, None);
        let all = |t, a, c| facts(t, a, c);
        assert!(!anything_to_seal(
            &all((Some(5), Some(5)), (Some(3), Some(3)), sealed),
            false
        ));
        assert!(!anything_to_seal(
            &all((Some(5), Some(5)), (Some(3), Some(3)), none),
            false
        ));
        assert!(anything_to_seal(
            &all((Some(5), Some(6)), (Some(3), Some(3)), sealed),
            false
        ));
        assert!(anything_to_seal(
            &all((Some(5), Some(5)), (Some(3), Some(4)), sealed),
            false
        ));
        assert!(anything_to_seal(
            &all((Some(5), Some(5)), (Some(3), Some(3)), sealed),
            true
        ));
        assert!(anything_to_seal(
            &all((Some(5), Some(5)), (None, Some(0)), sealed),
            false
        ));
        assert!(anything_to_seal(&all(none, (None, Some(0)), none), false));
        assert!(anything_to_seal(
            &all((Some(5), Some(5)), (Some(3), Some(3)), (Some(2), Some(3))),
            false
        ));
        assert!(anything_to_seal(
            &all((Some(5), Some(5)), (Some(3), Some(3)), (None, Some(1))),
            false
        ));
        let ranges = |accounts, changes| Ranges {
            accounts: Some(accounts),
            changes: Some(changes),
            currencies: Some(next_range(Some(0), Some(0))),
        };
        let none_new = ranges(next_range(Some(3), Some(3)), next_range(Some(2), Some(2)));
        assert!(!link_due(5, 5, &[], none_new));
        let no_change_yet = ranges(
            next_range(Some(3), Some(3)),
            next_range(Some(i64::MIN), None),
        );
        assert!(!link_due(5, 5, &[], no_change_yet));
        let first_of_accounts = ranges(next_range(None, Some(0)), next_range(Some(2), Some(2)));
        assert!(link_due(5, 5, &[], first_of_accounts));
        let first_of_changes = ranges(next_range(Some(3), Some(3)), next_range(None, None));
        assert!(link_due(5, 5, &[], first_of_changes));
        let new_change = ranges(next_range(Some(3), Some(3)), next_range(Some(2), Some(3)));
        assert!(link_due(5, 5, &[], new_change));
        assert_eq!(next_range(Some(3), Some(4)).bounds(), (4, 4));
        assert_eq!(next_range(None, Some(4)).bounds(), (i64::MIN, 4));
    }

    /// A link sealed before links sealed policy changes (with accounts,
    /// `changes_to` absent) hashes as it did then: a hash recorded by that
    /// version, pinned.
    #[test]
    fn a_link_without_policy_changes_hashes_as_before_they_were_sealed() {
        let prev = genesis(&Currency::default());
        let mut h = header(2, 3, 9, &[5], &[1]);
        h.accounts_to = Some(4);
        let mut hasher = LinkHasher::new(&prev, &h);
        let mut row = sealed(3, 500);
        row.memo = Some("rent");
        row.key = Some("k-1");
        hasher.add(&row);
        hasher.add_account(&SealedAccount {
            id: 4,
            name: Some("carol".into()),
            email: Some("carol@example.com".into()),
            created_at: 7,
        });
        assert_eq!(
            hex(&hasher.finish()),
            "9cfe66a8434ea35fb55fe45bd6bf03075f195450908876cf3a623df7df3b52b6"
        );
    }

    fn change(change_id: i64, kind: &str, overdraft: Option<i64>) -> SealedChange {
        SealedChange {
            change_id,
            account: 1,
            kind: kind.into(),
            overdraft,
            memo: Some("credit line".into()),
            at: 9,
            currency: 0,
        }
    }

    fn with_changes(changes_to: Option<i64>, changes: &[SealedChange]) -> Hash {
        let mut h = header(1, 1, 10, &[], &[]);
        h.accounts_to = Some(2);
        h.changes_to = changes_to;
        let mut hasher = LinkHasher::new(&genesis(&Currency::default()), &h);
        hasher.add(&sealed(1, 100));
        hasher.add_account(&account(1, "alice"));
        for c in changes {
            hasher.add_change(c);
        }
        assert_eq!(hasher.changes, changes.len() as i64);
        hasher.finish()
    }

    #[test]
    fn every_field_of_a_policy_change_is_part_of_its_link() {
        let base = with_changes(
            Some(2),
            &[
                change(1, "overdraft", Some(5000)),
                change(2, "freeze", None),
            ],
        );
        let edits: [fn(&mut SealedChange); 6] = [
            |c| c.change_id = 3,
            |c| c.account = 2,
            |c| c.kind = "close".into(),
            |c| c.overdraft = Some(5001),
            |c| c.memo = None,
            |c| c.at = 10,
        ];
        for edit in edits {
            let mut first = change(1, "overdraft", Some(5000));
            edit(&mut first);
            assert_ne!(
                base,
                with_changes(Some(2), &[first, change(2, "freeze", None)])
            );
        }
        assert_ne!(
            base,
            with_changes(Some(2), &[change(1, "overdraft", Some(5000))])
        );
        assert_ne!(
            base,
            with_changes(
                Some(3),
                &[
                    change(1, "overdraft", Some(5000)),
                    change(2, "freeze", None)
                ]
            ),
            "the bound is sealed"
        );
        assert_ne!(
            with_changes(Some(i64::MIN), &[]),
            with_changes(None, &[]),
            "a link with policy changes is told apart"
        );
    }

    /// A link whose bounds do not follow those before it is broken, and
    /// named, before its hash is compared.
    #[test]
    fn a_link_whose_policy_changes_go_back_is_broken() {
        let currency = Currency::default();
        let mut links = Vec::new();
        let mut prev = genesis(&currency);
        for (seq, changes_to) in [(1, Some(4)), (2, Some(3))] {
            let mut h = header(seq, seq * 10 - 9, seq * 10, &[], &[]);
            h.accounts_to = Some(0);
            h.changes_to = changes_to;
            let hash = LinkHasher::new(&prev, &h).finish();
            prev = hash;
            links.push(StoredLink {
                header: h,
                count: 0,
                hash: hex(&hash),
            });
        }
        let state = walk(&links, &currency, |_, _, _| Ok::<_, ()>(Vec::new())).unwrap();
        let broken = state.broken.unwrap();
        assert_eq!(broken.seq, 2);
        assert!(
            broken.why.contains("policy changes do not follow"),
            "{}",
            broken.why
        );
        assert_eq!(state.changes_to, Some(4));
    }

    /// A link sealed before links sealed currencies (accounts and policy
    /// changes, `currencies_to` absent) hashes as it did then: its hash
    /// worked out apart from this code, from the encoding that version
    /// wrote.
    #[test]
    fn a_link_without_currencies_hashes_as_before_they_were_sealed() {
        let prev = genesis(&Currency::default());
        let mut h = header(2, 3, 9, &[5], &[1]);
        h.accounts_to = Some(4);
        h.changes_to = Some(6);
        let mut hasher = LinkHasher::new(&prev, &h);
        let mut row = sealed(3, 500);
        row.memo = Some("rent");
        row.key = Some("k-1");
        // What a link with currencies would add, which this one ignores.
        row.currency = 3;
        row.pair_tx_id = Some(4);
        hasher.add(&row);
        row.tx_id = 5;
        row.status = "HELD";
        row.hold_amount = Some(700);
        row.expires_at = Some(99);
        row.settled_at = None;
        hasher.add_queued(&row);
        hasher.add_account(&account(4, "carol"));
        let mut limit = change(6, "overdraft", Some(5000));
        limit.currency = 3;
        hasher.add_change(&limit);
        assert_eq!(
            hex(&hasher.finish()),
            "09024199d9c74e32088701a96902bad8b6bf1883b4a38043b94e285147243ca6"
        );
    }

    fn currency(id: i64, code: &str, scale: i64) -> SealedCurrency {
        SealedCurrency {
            id,
            code: code.into(),
            scale,
            created_at: 11,
        }
    }

    /// A link with currencies over one exchange leg, a limit and the
    /// currencies given, each edited by `edit` first.
    fn with_currencies(
        currencies_to: Option<i64>,
        edit: impl FnOnce(&mut Sealed, &mut SealedChange, &mut Vec<SealedCurrency>),
    ) -> Hash {
        let mut h = header(1, 1, 10, &[2], &[]);
        h.accounts_to = Some(2);
        h.changes_to = Some(1);
        h.currencies_to = currencies_to;
        let mut leg = sealed(1, 100);
        leg.currency = 1;
        leg.pair_tx_id = Some(2);
        let mut limit = change(1, "overdraft", Some(5000));
        limit.currency = 1;
        let mut currencies = vec![currency(0, "PHP", 2), currency(1, "BTC", 8)];
        edit(&mut leg, &mut limit, &mut currencies);
        let mut hasher = LinkHasher::new(&genesis(&Currency::default()), &h);
        hasher.add(&leg);
        let mut queued = leg.clone();
        queued.tx_id = 2;
        queued.status = "PENDING";
        queued.pair_tx_id = Some(1);
        hasher.add_queued(&queued);
        hasher.add_account(&account(1, "alice"));
        hasher.add_change(&limit);
        for c in &currencies {
            hasher.add_currency(c);
        }
        assert_eq!(hasher.currencies, currencies.len() as i64);
        hasher.finish()
    }

    #[test]
    fn a_transfer_s_currency_and_pair_a_limit_s_currency_and_every_currency_are_part_of_its_link() {
        let base = with_currencies(Some(1), |_, _, _| {});
        assert_eq!(base, with_currencies(Some(1), |_, _, _| {}));
        let edits: [fn(&mut Sealed, &mut SealedChange, &mut Vec<SealedCurrency>); 9] = [
            |t, _, _| t.currency = 0,
            |t, _, _| t.pair_tx_id = None,
            |t, _, _| t.pair_tx_id = Some(3),
            |_, c, _| c.currency = 0,
            |_, _, list| list[1].code = "ETH".into(),
            |_, _, list| list[1].scale = 2,
            |_, _, list| list[1].created_at = 12,
            |_, _, list| list[1].id = 2,
            |_, _, list| drop(list.pop()),
        ];
        for (i, edit) in edits.into_iter().enumerate() {
            assert_ne!(base, with_currencies(Some(1), edit), "edit {i}");
        }
        assert_ne!(
            base,
            with_currencies(Some(2), |_, _, _| {}),
            "the bound is sealed"
        );
        assert_ne!(
            with_currencies(None, |_, _, list| list.clear()),
            with_currencies(Some(i64::MIN), |_, _, list| list.clear()),
            "a link with currencies is told apart"
        );
    }

    #[test]
    fn a_newly_added_currency_is_due_even_when_nothing_else_is() {
        let mut facts = facts((Some(5), Some(5)), (Some(3), Some(3)), (Some(2), Some(2)));
        assert!(!anything_to_seal(&facts, false));
        facts.max_currency = Some(1);
        assert!(anything_to_seal(&facts, false));
        facts.currencies_to = None;
        facts.max_currency = Some(0);
        assert!(
            anything_to_seal(&facts, false),
            "sealed first after the upgrade"
        );
        let only_currencies = Ranges {
            accounts: Some(next_range(Some(3), Some(3))),
            changes: Some(next_range(Some(2), Some(2))),
            currencies: Some(next_range(Some(0), Some(1))),
        };
        assert!(link_due(5, 5, &[], only_currencies));
        let first_of_currencies = Ranges {
            currencies: Some(next_range(None, Some(0))),
            ..only_currencies
        };
        assert!(link_due(5, 5, &[], first_of_currencies));
        let none_new = Ranges {
            currencies: Some(next_range(Some(1), Some(1))),
            ..only_currencies
        };
        assert!(!link_due(5, 5, &[], none_new));
    }

    /// Once a link sealed currencies, a later one without them is broken.
    #[test]
    fn a_link_that_drops_its_currencies_is_broken() {
        let currency = Currency::default();
        let mut links = Vec::new();
        let mut prev = genesis(&currency);
        for (seq, currencies_to) in [(1, Some(0)), (2, None)] {
            let mut h = header(seq, seq * 10 - 9, seq * 10, &[], &[]);
            h.accounts_to = Some(0);
            h.changes_to = Some(0);
            h.currencies_to = currencies_to;
            let hash = LinkHasher::new(&prev, &h).finish();
            prev = hash;
            links.push(StoredLink {
                header: h,
                count: 0,
                hash: hex(&hash),
            });
        }
        let state = walk(&links, &currency, |_, _, _| Ok::<_, ()>(Vec::new())).unwrap();
        let broken = state.broken.unwrap();
        assert_eq!(broken.seq, 2);
        assert!(
            broken.why.contains("currencies do not follow"),
            "{}",
            broken.why
        );
        assert_eq!(state.currencies_to, Some(0));
    }
}
