//! The pure part of anti-entropy between holders and homes (docs/design.md
//! §5): sums of the versions in a range of keys, and what to do when a
//! holder's sum and a home's differ. `anti_entropy.rs` runs it.

use std::collections::HashSet;

use cairn_engine::Fnv;
use cairn_net::{KeyName, KeyVersion};

/// An order-free sum of key versions: equal sets give equal sums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeSum {
    pub digest: u64,
    pub count: u32,
}

impl RangeSum {
    pub fn add(&mut self, domain: &str, key: &str, hlc: u64, writer: u64) {
        let mut hash = Fnv::default();
        hash.write(domain.as_bytes());
        hash.write(&[0]);
        hash.write(key.as_bytes());
        hash.write(&[0]);
        hash.write(&hlc.to_le_bytes());
        hash.write(&writer.to_le_bytes());
        self.digest = self.digest.wrapping_add(hash.finish());
        self.count += 1;
    }
}

/// What a holder does about a range whose sum differs from a home's.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Differences {
    /// Keys held here at a version the home does not list this holder
    /// for: announced (the home learns of the copy, or answers a newer
    /// version and the copy is dropped).
    pub announce: Vec<KeyName>,
    /// Versions the home lists this holder for that it did not hold when
    /// it looked: checked again, and forgotten at the home if still not held.
    pub check: Vec<KeyVersion>,
}

/// Compares the versions held here with those a home lists; a home that
/// stopped early (`reached`) compared nothing past that key.
pub fn differences(
    held: &[KeyVersion],
    listed: &[KeyVersion],
    reached: Option<&KeyName>,
) -> Differences {
    let id = |v: &KeyVersion| (v.domain.clone(), v.key.clone(), v.hlc, v.writer);
    let listed_ids: HashSet<_> = listed.iter().map(id).collect();
    let held_ids: HashSet<_> = held.iter().map(id).collect();
    let compared = |v: &KeyVersion| {
        reached.is_none_or(|r| (v.domain.as_str(), v.key.as_str()) <= (&r.domain, &r.key))
    };
    Differences {
        announce: held
            .iter()
            .filter(|v| compared(v) && !listed_ids.contains(&id(v)))
            .map(|v| KeyName { domain: v.domain.clone(), key: v.key.clone() })
            .collect(),
        check: listed.iter().filter(|v| !held_ids.contains(&id(v))).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(key: &str, hlc: u64) -> KeyVersion {
        KeyVersion { domain: "d".into(), key: key.into(), hlc, writer: 1 }
    }

    fn sum(versions: &[KeyVersion]) -> RangeSum {
        let mut sum = RangeSum::default();
        for v in versions {
            sum.add(&v.domain, &v.key, v.hlc, v.writer);
        }
        sum
    }

    #[test]
    fn sums_ignore_order_and_see_any_version_change() {
        let a = [v("a", 1), v("b", 2), v("c", 3)];
        let shuffled = [v("c", 3), v("a", 1), v("b", 2)];
        assert_eq!(sum(&a), sum(&shuffled));
        assert_ne!(sum(&a), sum(&[v("a", 1), v("b", 4), v("c", 3)]));
        assert_ne!(sum(&a), sum(&a[..2]));
        assert_eq!(sum(&[]), RangeSum::default());
    }

    #[test]
    fn differences_announce_what_the_home_lacks_and_check_what_it_lists_wrongly() {
        let held = [v("a", 1), v("b", 2), v("c", 3)];
        let listed = [v("a", 1), v("b", 1), v("z", 5)];
        let found = differences(&held, &listed, None);
        let names: Vec<&str> = found.announce.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(found.check, [v("b", 1), v("z", 5)]);
        assert_eq!(differences(&held, &held, None), Differences::default());
    }

    #[test]
    fn nothing_past_where_the_home_stopped_is_announced() {
        let held = [v("a", 1), v("m", 2), v("z", 3)];
        let reached = KeyName { domain: "d".into(), key: "m".into() };
        let found = differences(&held, &[v("a", 1)], Some(&reached));
        let names: Vec<&str> = found.announce.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(names, ["m"]);
    }
}
