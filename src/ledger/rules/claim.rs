//! Which waiting transfers a settle batch takes: per lane the oldest of
//! its waiting rows, and never one leg of an exchange without the other.
//!
//! A lane is where a source's transfers wait, oldest first; an engine that
//! settles with several workers locks lanes, and a worker may take only the
//! rows of lanes it holds. The two legs of an exchange wait in two lanes
//! (the payer's and the desk's), and must be decided in one batch, so a
//! leg whose partner this batch cannot take holds its own lane back from
//! that leg on, which may hold back a pair of that lane in turn.

// Fx hashing: the window is a batch of small integer ids, rehashed every batch.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// A PENDING transfer as a batch sees it before it claims any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Waiting {
    pub(crate) tx_id: i64,
    pub(crate) lane: i32,
    /// The other leg, for an exchange leg.
    pub(crate) pair: Option<i64>,
}

/// The tx_ids, in order, that a batch claims of `window` (the oldest
/// PENDING transfers in `tx_id` order) when it holds the lanes `locked`
/// says: per lane a prefix of its waiting rows, never one leg alone.
///
/// A leg whose partner is not in the window, or waits in a lane not held,
/// or behind a leg held back, cuts its lane at itself. Of what is left, the
/// oldest `max` are taken, and with them the second leg of a pair whose
/// first leg is among them: so a batch may take a little more than `max`
/// (one more for each pair the cap falls inside), but never half a pair.
/// A second leg taken that way may pass rows of its lane queued between
/// the legs; no such row names either party of the exchange, because the
/// engines give the legs their ids under both parties' locks.
pub(crate) fn claim(window: &[Waiting], locked: impl Fn(i32) -> bool, max: usize) -> Vec<i64> {
    if !window.iter().any(|w| w.pair.is_some()) {
        return window
            .iter()
            .filter(|w| locked(w.lane))
            .map(|w| w.tx_id)
            .take(max)
            .collect();
    }
    if let Some(taken) = adjacent_claim(window, &locked, max) {
        return taken;
    }
    claim_by_cuts(window, &locked, max)
}

/// The claim of any window: each lane cut where a leg's pair cannot come
/// too, then the oldest `max` of what is left, with their pairs.
fn claim_by_cuts(window: &[Waiting], locked: &impl Fn(i32) -> bool, max: usize) -> Vec<i64> {
    let cuts = cuts(window, locked);
    let open = |w: &Waiting| locked(w.lane) && cuts.get(&w.lane).is_none_or(|cut| w.tx_id < *cut);
    let mut taken = Vec::with_capacity(max.min(window.len()) + 1);
    // Second legs owed by first legs taken; once the cap is reached only
    // these are taken, so the batch ends as soon as none is owed.
    let mut owed: HashSet<i64> = HashSet::default();
    for w in window.iter().filter(|w| open(w)) {
        if taken.len() >= max && !owed.remove(&w.tx_id) {
            if owed.is_empty() {
                break;
            }
            continue;
        }
        owed.remove(&w.tx_id);
        if let Some(pair) = w.pair.filter(|pair| *pair > w.tx_id) {
            owed.insert(pair);
        }
        taken.push(w.tx_id);
    }
    taken
}

/// The claim when every lane of the window is held and every pair's legs
/// are next to each other (a ledger file always writes them so, and
/// PostgreSQL almost always): the oldest `max`, and the second leg of a
/// pair the cap falls inside. `None` when the window is not of that shape,
/// or its last row is a first leg whose partner lies past it and would be
/// taken; the general claim then decides. A batch of pairs is thus claimed
/// in one pass, without an index of its ids.
fn adjacent_claim(
    window: &[Waiting],
    locked: &impl Fn(i32) -> bool,
    max: usize,
) -> Option<Vec<i64>> {
    let mut i = 0;
    while let Some(w) = window.get(i) {
        if !locked(w.lane) {
            return None;
        }
        match w.pair {
            None => i += 1,
            Some(pair) if pair > w.tx_id => match window.get(i + 1) {
                Some(next) if next.tx_id == pair && next.pair == Some(w.tx_id) => {
                    if !locked(next.lane) {
                        return None;
                    }
                    i += 2;
                }
                // The window ends between the legs.
                None => i += 1,
                Some(_) => return None,
            },
            Some(_) => return None,
        }
    }
    let mut n = max.min(window.len());
    if n > 0
        && window[n - 1]
            .pair
            .is_some_and(|pair| pair > window[n - 1].tx_id)
    {
        n += 1;
    }
    (n <= window.len()).then(|| window[..n].iter().map(|w| w.tx_id).collect())
}

/// A leg of `window` that waits without its pair: one whose partner is
/// older and not waiting, or, when `whole` (the window holds every waiting
/// transfer), one whose partner is not waiting at all. The two legs are
/// written and decided in one transaction each, so such a leg is damage;
/// left alone it would hold its lane back for ever.
pub(crate) fn stray_leg(window: &[Waiting], whole: bool) -> Option<i64> {
    let waiting: HashSet<i64> = window.iter().map(|w| w.tx_id).collect();
    window
        .iter()
        .find(|w| {
            w.pair
                .is_some_and(|pair| !waiting.contains(&pair) && (pair < w.tx_id || whole))
        })
        .map(|w| w.tx_id)
}

/// Where each lane is cut: the tx_id of its first row a batch may not take
/// (no entry: none is held back). Each cut is lowered at most once per leg
/// it passes, so this is linear in the window but for the lookups.
fn cuts(window: &[Waiting], locked: &impl Fn(i32) -> bool) -> HashMap<i32, i64> {
    let at: HashMap<i64, usize> = window
        .iter()
        .enumerate()
        .map(|(i, w)| (w.tx_id, i))
        .collect();
    // Each lane's legs in tx_id order, as positions in `window`.
    let mut legs: HashMap<i32, Vec<usize>> = HashMap::default();
    for (i, w) in window.iter().enumerate() {
        if w.pair.is_some() {
            legs.entry(w.lane).or_default().push(i);
        }
    }
    let mut cuts: HashMap<i32, i64> = HashMap::default();
    // Each cut lowered, as (lane, new cut, cut before), so the legs it
    // passed hold their partners' lanes back in turn.
    let mut lowered: Vec<(i32, i64, i64)> = Vec::new();
    for w in window.iter().filter(|w| locked(w.lane)) {
        let Some(pair) = w.pair else { continue };
        let partner = at.get(&pair).map(|&j| &window[j]);
        if partner.is_none_or(|p| !locked(p.lane)) {
            lower(&mut cuts, &mut lowered, w);
        }
    }
    while let Some((lane, cut, before)) = lowered.pop() {
        let partners: Vec<&Waiting> = legs[&lane]
            .iter()
            .map(|&i| &window[i])
            .filter(|w| w.tx_id >= cut && w.tx_id < before)
            .filter_map(|w| w.pair.and_then(|pair| at.get(&pair)))
            .map(|&j| &window[j])
            .filter(|p| locked(p.lane))
            .collect();
        for p in partners {
            lower(&mut cuts, &mut lowered, p);
        }
    }
    cuts
}

/// Cuts `w`'s lane at `w`, unless it is cut there or before already.
fn lower(cuts: &mut HashMap<i32, i64>, lowered: &mut Vec<(i32, i64, i64)>, w: &Waiting) {
    let cut = cuts.entry(w.lane).or_insert(i64::MAX);
    if w.tx_id < *cut {
        lowered.push((w.lane, w.tx_id, *cut));
        *cut = w.tx_id;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use proptest::prelude::*;

    use super::*;

    fn row(tx_id: i64, lane: i32) -> Waiting {
        Waiting {
            tx_id,
            lane,
            pair: None,
        }
    }

    fn leg(tx_id: i64, lane: i32, pair: i64) -> Waiting {
        Waiting {
            tx_id,
            lane,
            pair: Some(pair),
        }
    }

    #[test]
    fn without_pairs_the_oldest_rows_of_the_locked_lanes_are_taken() {
        let window = [row(1, 0), row(2, 1), row(3, 0), row(4, 2), row(5, 1)];
        assert_eq!(claim(&window, |_| true, 3), vec![1, 2, 3]);
        assert_eq!(claim(&window, |l| l != 1, 3), vec![1, 3, 4]);
        assert_eq!(claim(&window, |_| false, 3), Vec::<i64>::new());
        assert_eq!(claim(&[], |_| true, 3), Vec::<i64>::new());
    }

    #[test]
    fn a_cap_between_the_legs_takes_the_second_leg_too() {
        let window = [row(1, 0), leg(2, 1, 3), leg(3, 2, 2), row(4, 0)];
        assert_eq!(claim(&window, |_| true, 2), vec![1, 2, 3]);
        assert_eq!(claim(&window, |_| true, 1), vec![1]);
        assert_eq!(claim(&window, |_| true, 3), vec![1, 2, 3]);
    }

    #[test]
    fn a_leg_whose_partner_cannot_be_taken_holds_its_lane_back() {
        // The partner's lane is held elsewhere.
        let window = [row(1, 0), leg(2, 0, 3), leg(3, 1, 2), row(4, 0), row(5, 2)];
        assert_eq!(claim(&window, |l| l != 1, 10), vec![1, 5]);
        // The partner is past the window's end.
        let window = [row(1, 0), leg(2, 0, 9), row(3, 1)];
        assert_eq!(claim(&window, |_| true, 10), vec![1, 3]);
    }

    #[test]
    fn a_cut_passes_from_lane_to_lane_through_pairs() {
        // Lane 0's pair waits on lane 1, whose older pair waits on lane 2,
        // which is held elsewhere: lanes 1 and 0 are cut at their legs.
        let window = [
            leg(1, 1, 2),
            leg(2, 2, 1),
            row(3, 0),
            leg(4, 0, 5),
            leg(5, 1, 4),
            row(6, 3),
        ];
        assert_eq!(claim(&window, |l| l != 2, 10), vec![3, 6]);
        assert_eq!(claim(&window, |_| true, 10), vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_leg_whose_pair_cannot_be_waiting_is_stray() {
        let window = [row(1, 0), leg(2, 0, 3), leg(3, 1, 2), leg(5, 1, 9)];
        assert_eq!(stray_leg(&window, false), None, "9 may be past the window");
        assert_eq!(stray_leg(&window, true), Some(5));
        assert_eq!(stray_leg(&[row(1, 0), leg(4, 1, 2)], false), Some(4));
    }

    /// A window of up to 40 rows over 5 lanes, some of them pairs (legs
    /// adjacent or interleaved with other pairs, a few partners past the
    /// window's end), and which lanes are held.
    fn windows() -> impl Strategy<Value = (Vec<Waiting>, Vec<bool>, usize)> {
        (
            prop::collection::vec((0i32..5, 0u8..4, 0i32..5, 0usize..3), 0..40),
            prop::collection::vec(prop::bool::weighted(0.7), 5),
            0usize..12,
        )
            .prop_map(|(specs, held, max)| {
                let mut window: Vec<Waiting> = Vec::new();
                // Second legs still to place: (at or after this position, lane, first leg).
                let mut due: Vec<(usize, i32, i64)> = Vec::new();
                let mut next = 1i64;
                for (lane, kind, other, gap) in specs {
                    if let Some(at) = due.iter().position(|(after, ..)| *after <= window.len()) {
                        let (_, lane, first) = due.remove(at);
                        window.push(leg(next, lane, first));
                        let i = window.iter().position(|w| w.tx_id == first).unwrap();
                        window[i].pair = Some(next);
                        next += 1;
                    }
                    match kind {
                        0 => {
                            window.push(Waiting {
                                tx_id: next,
                                lane,
                                pair: Some(-1),
                            });
                            due.push((window.len() + gap, other, next));
                        }
                        _ => window.push(row(next, lane)),
                    }
                    next += 1;
                }
                // First legs whose partner never came point past the window.
                for w in &mut window {
                    if w.pair == Some(-1) {
                        w.pair = Some(next + 1000);
                    }
                }
                (window, held, max)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Never one leg alone; per lane a prefix of its waiting rows but
        /// for second legs taken past the cap; no more than `max` but for
        /// those; every row from a held lane taken.
        #[test]
        fn a_claim_takes_whole_pairs_and_each_lane_oldest_first(
            (window, held, max) in windows(),
        ) {
            let locked = |lane: i32| held[lane as usize];
            let taken = claim(&window, locked, max);
            let set: BTreeSet<i64> = taken.iter().copied().collect();
            prop_assert_eq!(set.len(), taken.len());
            prop_assert!(taken.windows(2).all(|p| p[0] < p[1]), "{:?}", taken);
            let by_id: HashMap<i64, &Waiting> = window.iter().map(|w| (w.tx_id, w)).collect();
            let mut past_cap = 0;
            for &tx_id in &taken {
                let w = by_id[&tx_id];
                prop_assert!(locked(w.lane), "{} from a lane not held", tx_id);
                let first_leg = match w.pair {
                    Some(pair) => {
                        prop_assert!(set.contains(&pair), "{} without its leg {}", tx_id, pair);
                        (pair < tx_id).then_some(pair)
                    }
                    None => None,
                };
                for older in window.iter().filter(|o| o.lane == w.lane && o.tx_id < tx_id) {
                    if set.contains(&older.tx_id) {
                        continue;
                    }
                    // Only a second leg may pass rows queued after its first.
                    let passed = first_leg.is_some_and(|first| older.tx_id > first);
                    prop_assert!(passed, "{} taken before {} of its lane", tx_id, older.tx_id);
                    past_cap += 1;
                }
            }
            let pairs_taken = taken
                .iter()
                .filter(|t| by_id[t].pair.is_some_and(|p| p > **t))
                .count();
            prop_assert!(taken.len() <= max + pairs_taken, "{} taken of {}", taken.len(), max);
            if past_cap > 0 {
                prop_assert!(taken.len() > max);
            }
        }

        /// The one-pass claim of a window whose pairs lie next to each
        /// other takes what the general claim takes, with every lane held
        /// or some, and a last first leg whose partner lies past the window.
        #[test]
        fn a_window_of_adjacent_pairs_is_claimed_as_the_general_claim_would(
            (items, held, max, trailing) in (
                prop::collection::vec((any::<bool>(), 0..4i32, 0..4i32), 0..40),
                prop::collection::vec(any::<bool>(), 4),
                0..50usize,
                any::<bool>(),
            ),
        ) {
            let mut window = Vec::new();
            let mut id = 1;
            for (pair, lane, other_lane) in items {
                if pair {
                    window.push(Waiting { tx_id: id, lane, pair: Some(id + 1) });
                    window.push(Waiting { tx_id: id + 1, lane: other_lane, pair: Some(id) });
                    id += 2;
                } else {
                    window.push(row(id, lane));
                    id += 1;
                }
            }
            if trailing {
                window.push(Waiting { tx_id: id, lane: 0, pair: Some(id + 1) });
            }
            let all = |_: i32| true;
            let fast = adjacent_claim(&window, &all, max);
            let whole = !trailing || max.min(window.len()) < window.len();
            prop_assert_eq!(fast.is_some(), whole);
            if let Some(fast) = fast {
                prop_assert_eq!(fast, claim_by_cuts(&window, &all, max));
            }
            let some = |lane: i32| held[lane as usize];
            if let Some(fast) = adjacent_claim(&window, &some, max) {
                prop_assert_eq!(fast, claim_by_cuts(&window, &some, max));
            }
        }

        /// With every lane held and no pair, exactly the oldest `max`; with
        /// every lane held and pairs whose legs are all in the window, the
        /// oldest `max` and the second legs they need.
        #[test]
        fn with_every_lane_held_the_claim_is_the_oldest_rows(
            (window, _, max) in windows(),
        ) {
            let plain: Vec<Waiting> = window.iter().map(|w| row(w.tx_id, w.lane)).collect();
            let oldest: Vec<i64> = plain.iter().take(max).map(|w| w.tx_id).collect();
            prop_assert_eq!(claim(&plain, |_| true, max), oldest.clone());
            let ids: BTreeSet<i64> = window.iter().map(|w| w.tx_id).collect();
            if window.iter().all(|w| w.pair.is_none_or(|p| ids.contains(&p))) {
                let mut expected: BTreeSet<i64> = oldest.iter().copied().collect();
                for w in window.iter().take(max) {
                    expected.extend(w.pair);
                }
                let taken = claim(&window, |_| true, max);
                prop_assert_eq!(taken, expected.into_iter().collect::<Vec<_>>());
            }
        }
    }
}
