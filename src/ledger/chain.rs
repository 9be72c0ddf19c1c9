//! The tamper-evident log: a SHA-256 hash chain sealed over transfers once
//! they can no longer change.
//!
//! A link covers the transfers with `tx_id` in `(previous link's last_tx,
//! last_tx]`: those decided by every field, those that could still change
//! then (PENDING, or a live hold: its `excluded` list) by the fields fixed
//! when they were queued; their decision is sealed by the link that finds
//! them decided, in its `late` list. Its hash is taken over
//! the previous link's hash, its own header and every covered transfer's
//! canonical fields, in order; the first link's "previous hash" is taken
//! over the ledger's currency and scale. Links are sealed after the fact, by
//! one process at a time (`settle` seals at its end), so no settle worker
//! ever waits on the chain; `verify` recomputes every link and counts what
//! is not sealed yet.

use sha2::{Digest, Sha256};

use crate::ledger::rules;
use crate::money::Currency;

/// At most this many transfers in one link: a broken link names a range
/// short enough to look through.
pub(crate) const LINK_MAX: i64 = 100_000;

pub(crate) type Hash = [u8; 32];

/// Whether anything waits to be sealed: a transfer queued after the last
/// link, or one a link left open that is decided now. Read before a sealer
/// takes any lock, so that a `settle` with nothing new (a watch worker
/// between batches) locks nothing. SQL both engines run.
pub(crate) fn anything_to_seal() -> String {
    format!(
        "SELECT coalesce(
        (SELECT max(tx_id) FROM transfers) > coalesce(
            (SELECT last_tx FROM chain_links ORDER BY seq DESC LIMIT 1),
            (SELECT min(tx_id) FROM transfers) - 1)
        OR EXISTS (SELECT 1 FROM chain_open o JOIN transfers t ON t.tx_id = o.tx_id
                   WHERE t.status NOT IN ({})),
        false)",
        rules::changing_statuses_sql()
    )
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
pub(crate) struct Sealed {
    pub tx_id: i64,
    pub src: i64,
    pub dst: i64,
    pub amount: i64,
    pub status: String,
    pub reason: Option<String>,
    pub memo: Option<String>,
    pub key: Option<String>,
    pub created_at: i64,
    pub settled_at: Option<i64>,
    pub hold_amount: Option<i64>,
    pub expires_at: Option<i64>,
    pub refund_of: Option<i64>,
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
}

/// Hashes one link, fed its transfers in order: the late ones, then those
/// of its range.
pub(crate) struct LinkHasher {
    h: Sha256,
    /// One row's encoding, reused: the hash takes a row in one call rather
    /// than a call per field, which cost more than the hashing itself.
    row: Vec<u8>,
    pub count: i64,
}

impl LinkHasher {
    pub(crate) fn new(prev: &Hash, header: &LinkHeader) -> Self {
        let mut h = Sha256::new();
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
        Self {
            h,
            row: Vec::with_capacity(256),
            count: 0,
        }
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
}

/// Recomputes `links` in order, each from the transfers `cover` feeds it
/// (decided ones to the first callback, those sealed by their queue fields
/// to the second; it returns the late ids it could not find), and stops at
/// the first that does not match. The engine adds what is not sealed yet.
pub(crate) fn walk<E>(
    links: &[StoredLink],
    currency: &Currency,
    mut cover: impl FnMut(
        &LinkHeader,
        &mut dyn FnMut(Sealed),
        &mut dyn FnMut(Sealed),
    ) -> Result<Vec<i64>, E>,
) -> Result<ChainState, E> {
    let mut state = ChainState {
        links: links.len() as i64,
        ..ChainState::default()
    };
    let mut prev = genesis(currency);
    let mut expected_first = i64::MIN;
    for (i, link) in links.iter().enumerate() {
        let h = &link.header;
        let mut why = None;
        if h.seq != i as i64 + 1 || (i > 0 && h.first_tx != expected_first) {
            why = Some("the links before it are missing or out of order".to_string());
        }
        let hasher = std::cell::RefCell::new(LinkHasher::new(&prev, h));
        let missing = cover(h, &mut |t| hasher.borrow_mut().add(&t), &mut |t| {
            hasher.borrow_mut().add_queued(&t)
        })?;
        let hasher = hasher.into_inner();
        let count = hasher.count;
        let recomputed = hex(&hasher.finish());
        if why.is_none() && !missing.is_empty() {
            why = Some(format!("transfer {} it sealed is gone", missing[0]));
        }
        if why.is_none() && recomputed != link.hash {
            why = Some(format!(
                "its {count} transfers (or the ledger's currency and scale, for the first) differ from what was sealed ({} then)",
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
    }
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
            tx_id: Some(*first.max(&0)),
            message: format!("link {seq} of the hash chain ({range}) is broken: {why}"),
        });
    }
    if let Some(why) = &state.unavailable {
        return findings.into_check(CHAIN_CHECK, why.clone());
    }
    let detail = match (&state.broken, &state.head) {
        (Some(BrokenLink { seq, .. }), _) => format!(
            "{} links; link {seq} and every link after it no longer match what they seal",
            state.links
        ),
        (None, head) => match head {
            Some(Head { last_tx, .. }) => format!(
                "{} links seal {} transfers up to tx_id {last_tx} (`verify --head` prints the head); {} not sealed yet",
                state.links, state.sealed, state.unsealed
            ),
            None => format!(
                "no link sealed yet; {} transfers not sealed yet",
                state.unsealed
            ),
        },
    };
    findings.into_check(CHAIN_CHECK, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(tx_id: i64, amount: i64) -> Sealed {
        Sealed {
            tx_id,
            src: 1,
            dst: 2,
            amount,
            status: "COMPLETED".into(),
            reason: None,
            memo: Some("m".into()),
            key: None,
            created_at: 5,
            settled_at: Some(6),
            hold_amount: None,
            expires_at: None,
            refund_of: None,
        }
    }

    fn link(prev: &Hash, rows: &[Sealed]) -> Hash {
        let header = LinkHeader {
            seq: 1,
            first_tx: 1,
            last_tx: 10,
            excluded: vec![],
            late: vec![],
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
}
