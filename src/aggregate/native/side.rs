//! The buckets of one sign of a native histogram: a dense window with an offset, plus sorted outliers.

pub(super) const MIN_WINDOW_CAP: usize = 1024;
pub(super) const MAX_WINDOW_CAP: usize = 1 << 16;
/// Slots of a fresh window.
const INITIAL_WINDOW: usize = 16;

/// The buckets of one sign: a dense window `dense[p]` = count of index `offset + p`, plus far buckets
/// that did not fit the window's cap.
#[derive(Debug, Clone, Default)]
pub(super) struct Side {
    pub(super) offset: i32,
    pub(super) dense: Vec<u64>,
    /// Populated buckets outside the window, sorted by index.
    pub(super) far: Vec<(i32, u64)>,
    /// Non-zero buckets in `dense` and `far`.
    pub(super) populated: usize,
    /// `far.len()` after the last rebuild: the window moves again only once that has doubled.
    pub(super) far_mark: usize,
}

impl Side {
    /// Adds one to bucket `i`; true when the bucket was empty before.
    #[inline(always)]
    pub(super) fn incr(&mut self, i: i32, cap: usize) -> bool {
        // Below the offset wraps to a huge position, out of the window like one past its end.
        let p = i.wrapping_sub(self.offset) as u32 as usize;
        match self.dense.get_mut(p) {
            Some(c) => {
                *c += 1;
                if *c == 1 {
                    self.populated += 1;
                    return true;
                }
                false
            }
            None => self.add_outside(i, 1, cap),
        }
    }

    /// Adds `c > 0` to bucket `i`, which is outside the window: grows the window over it when the
    /// cap allows, else keeps it among the far buckets. True when the bucket was empty before.
    #[cold]
    #[inline(never)]
    fn add_outside(&mut self, i: i32, c: u64, cap: usize) -> bool {
        let len = self.dense.len();
        let (lo, hi) = if len == 0 { (i, i) } else { (self.offset.min(i), (self.offset + len as i32 - 1).max(i)) };
        let need = (i64::from(hi) - i64::from(lo) + 1) as usize;
        if need <= cap {
            let target = need.max(len * 2).max(INITIAL_WINDOW).min(cap);
            let extra = (target - need) as i32;
            // Slack goes where the window grew (both ways for a fresh one).
            let start = if len == 0 {
                lo - extra / 2
            } else if i < self.offset {
                lo - extra
            } else {
                lo
            };
            let mut dense = vec![0u64; target];
            if len > 0 {
                let at = (self.offset - start) as usize;
                dense[at..at + len].copy_from_slice(&self.dense);
            }
            self.far.retain(|&(j, n)| match usize::try_from(i64::from(j) - i64::from(start)) {
                Ok(p) if p < target => {
                    dense[p] += n;
                    false
                }
                _ => true,
            });
            self.offset = start;
            self.dense = dense;
            let slot = &mut self.dense[(i - start) as usize];
            *slot += c;
            if *slot == c {
                self.populated += 1;
                return true;
            }
            return false;
        }
        match self.far.binary_search_by_key(&i, |e| e.0) {
            Ok(k) => {
                self.far[k].1 += c;
                false
            }
            Err(k) => {
                self.far.insert(k, (i, c));
                self.populated += 1;
                // The window sits on a few outliers while most buckets are far: move it.
                if self.far.len() > 8.max(2 * self.far_mark) && self.far.len() * 2 > self.populated {
                    let entries = self.entries();
                    self.rebuild(&entries, cap);
                }
                true
            }
        }
    }

    /// Populated buckets in index order.
    pub(super) fn entries(&self) -> Vec<(i32, u64)> {
        let mut out = Vec::with_capacity(self.populated);
        let split = self.far.partition_point(|e| e.0 < self.offset);
        out.extend_from_slice(&self.far[..split]);
        out.extend(self.dense.iter().enumerate().filter(|e| *e.1 > 0).map(|(p, &c)| (self.offset + p as i32, c)));
        out.extend_from_slice(&self.far[split..]);
        out
    }

    /// Merges bucket pairs for the next lower schema: index `i` becomes `ceil(i/2)`.
    pub(super) fn halve(&mut self, cap: usize) {
        let mut merged: Vec<(i32, u64)> = Vec::with_capacity(self.populated);
        for (i, c) in self.entries() {
            let j = (i + 1) >> 1;
            match merged.last_mut() {
                Some(last) if last.0 == j => last.1 += c,
                _ => merged.push((j, c)),
            }
        }
        self.rebuild(&merged, cap);
    }

    /// Replaces the contents with `entries` (sorted, distinct, counts > 0), placing the window of at
    /// most `cap` slots where it covers the most buckets.
    fn rebuild(&mut self, entries: &[(i32, u64)], cap: usize) {
        self.populated = entries.len();
        self.far.clear();
        self.dense.clear();
        if entries.is_empty() {
            return;
        }
        let (mut best, mut best_n, mut b) = (0usize, 0usize, 0usize);
        for a in 0..entries.len() {
            while b < entries.len() && i64::from(entries[b].0) - i64::from(entries[a].0) < cap as i64 {
                b += 1;
            }
            if b - a > best_n {
                (best, best_n) = (a, b - a);
            }
        }
        let lo = entries[best].0;
        let hi = entries[best + best_n - 1].0;
        self.offset = lo;
        self.dense = vec![0; (hi - lo) as usize + 1];
        for &(i, c) in entries {
            if (lo..=hi).contains(&i) {
                self.dense[(i - lo) as usize] = c;
            } else {
                self.far.push((i, c));
            }
        }
        self.far_mark = self.far.len();
    }
}
