//! The remote-write label blocks of the last push, sample by sample in walk order, with what each was made from: what lets a push whose series are those of the last one copy each sample's labels instead of reading and encoding them.
//!
//! A 2.0 request has its own symbols table, in the order its samples first use each string, so a
//! sample's label refs depend on every sample before it in the same request. They are the same as
//! last push's exactly while every sample so far is the same as last push's: same family, same
//! series, same suffix and `le`/`quantile` value, and the push's generation, constant labels and
//! request size unchanged (the encoder checks those three). So the cache is a prefix:
//! [`LabelBlocks::lookup`] walks it beside the snapshot, and the first sample that differs ends
//! the reuse for the rest of the push ([`Lookup::Switch`]); from there the encoder interns afresh
//! and the cache records the new blocks in place of the old ones ([`LabelBlocks::open_block`],
//! [`LabelBlocks::close_block`]). A series added or removed at the end of a family costs the
//! samples after it one push of interning, as every push did before. A 1.0 block is the
//! sample's `Label` fields alone, which depend on nothing before it; 1.0 uses the same prefix
//! cache, for one cache and one set of tests, at the cost of re-encoding after a change what
//! it could have reused.
//!
//! A family and a series are known again by their ids, which within one generation always name
//! the same family, and the same label values and overflow flag (see
//! [`crate::snapshot::Snapshot`]): nothing of either is read to recognise it.
//!
//! The cache holds at most [`MAX_BYTES`]; the samples past that are interned every push.

use super::Sample;
use crate::event::SeriesId;
use crate::registry::{Family, FamilyId};

/// The most the cache holds (blocks and their keys); the
/// samples of a push past it are encoded afresh every push, as if there were no cache.
pub(super) const MAX_BYTES: usize = 32 << 20;

/// No `le`/`quantile` label.
const NO_EXTRA: u16 = u16::MAX;

/// One sample as the last push encoded it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Its series, an index into [`LabelBlocks::series`].
    series: u32,
    /// End of its block in [`LabelBlocks::blocks`]; it starts where the previous entry's ends.
    end: u32,
    /// Bytes of the block before the metadata field (the label refs field).
    split: u32,
    /// Symbols in its request's table once it was encoded.
    symbols: u32,
    /// Its `le`/`quantile` label, an index into its family's `extras`, or [`NO_EXTRA`].
    extra: u16,
    /// Its name's suffix: [`suffix_slot`].
    slot: u8,
}

/// One series as the last push had it.
#[derive(Debug, Clone, Copy)]
struct SeriesKey {
    /// Index into [`LabelBlocks::families`].
    family: u32,
    id: SeriesId,
}

/// One family as the last push had it.
#[derive(Debug)]
struct FamilyKey {
    id: FamilyId,
    /// A copy of the family, for the encoder to take over from mid-family ([`LabelBlocks::family`]).
    family: Family,
    /// The `le`/`quantile` labels its samples had, as (name, value).
    extras: Vec<(&'static str, Box<str>)>,
}

impl FamilyKey {
    fn of(id: FamilyId, f: &Family) -> FamilyKey {
        let family = Family {
            name: f.name.clone(),
            help: f.help.clone(),
            kind: f.kind,
            label_names: f.label_names.clone(),
            params: f.params.clone(),
            native: f.native,
        };
        FamilyKey { id, family, extras: Vec::new() }
    }
}

/// What [`LabelBlocks::lookup`] found for a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lookup {
    /// The same as last push's: its block is [`LabelBlocks::block`].
    Hit,
    /// The first sample of the push that differs: the encoder takes over from the state the last
    /// push had after the previous sample ([`LabelBlocks::symbols_before`],
    /// [`LabelBlocks::family`]), then encodes this one afresh.
    Switch,
    /// Already encoding afresh.
    Miss,
}

/// The label blocks of the last push that kept them, and where this push is in them.
#[derive(Debug, Default)]
pub(super) struct LabelBlocks {
    families: Vec<FamilyKey>,
    series: Vec<SeriesKey>,
    entries: Vec<Entry>,
    /// Each sample's label refs field then its metadata field, end to end.
    blocks: Vec<u8>,
    /// The block of a sample this push does not keep.
    scratch: Vec<u8>,
    /// Where the current sample's block is: in `blocks` (else `scratch`), from, to, and where its
    /// label refs field ends.
    current: (bool, usize, usize, usize),
    /// This push is kept for the next one.
    keep: bool,
    /// Every sample of this push so far was the same as the last push's.
    hitting: bool,
    /// This push's new blocks are still recorded (false past [`MAX_BYTES`]).
    recording: bool,
    /// Samples of this push taken from the last one.
    hits: usize,
    families_seen: usize,
    series_seen: usize,
    samples_seen: usize,
    /// The previous sample's series, within the current family.
    prev: Option<SeriesId>,
    /// [`MAX_BYTES`] unless a test says otherwise.
    #[cfg(test)]
    pub(super) max_bytes: Option<usize>,
}

/// The slot of a `__name__` suffix: "", `_bucket`, `_sum`, `_count` (the only ones [`super::walk`]
/// writes).
pub(super) fn suffix_slot(suffix: &str) -> usize {
    match suffix {
        "_bucket" => 1,
        "_sum" => 2,
        "_count" => 3,
        _ => 0,
    }
}

impl LabelBlocks {
    /// Forgets everything.
    pub(super) fn clear(&mut self) {
        self.families.clear();
        self.series.clear();
        self.entries.clear();
        self.blocks.clear();
    }

    /// Starts a push. `reuse`: the push-wide inputs (constant labels, request size) are those the
    /// cache was made with. `keep`: this push's blocks are kept for the next one (its values are
    /// current, not stale markers); a push that is not kept neither reads nor changes the cache.
    pub(super) fn begin(&mut self, reuse: bool, keep: bool) {
        if keep && !reuse {
            self.clear();
        }
        self.keep = keep;
        self.hitting = keep && reuse;
        self.recording = keep;
        (self.families_seen, self.series_seen, self.samples_seen, self.hits, self.prev) = (0, 0, 0, 0, None);
    }

    /// Ends a push: a kept push drops what the last one had past its own end, and gives back
    /// memory the cache no longer needs.
    pub(super) fn end(&mut self) {
        if !self.keep {
            return;
        }
        self.cut();
        let shrink = |cap: usize, len: usize| cap > 4096 && cap / 4 > len;
        if shrink(self.blocks.capacity(), self.blocks.len()) {
            self.blocks.shrink_to(self.blocks.len() * 2);
            self.entries.shrink_to(self.entries.len() * 2);
            self.series.shrink_to(self.series.len() * 2);
        }
        if self.scratch.capacity() > 4096 {
            self.scratch = Vec::new();
        }
    }

    /// Whether this push still takes its blocks from the last one.
    pub(super) fn hitting(&self) -> bool {
        self.hitting
    }

    /// Samples of this push taken from the last one.
    #[cfg(test)]
    pub(super) fn hits(&self) -> usize {
        self.hits
    }

    /// How many samples are kept: the next push reuses at most these.
    pub(super) fn kept(&self) -> usize {
        self.entries.len()
    }

    /// Symbols in the request's table after the previous sample of this push.
    pub(super) fn symbols_before(&self) -> usize {
        self.samples_seen.checked_sub(1).and_then(|i| self.entries.get(i)).map_or(0, |e| e.symbols as usize)
    }

    /// The current family as the cache has it (the same as the snapshot's while hitting).
    pub(super) fn family(&self) -> &Family {
        &self.families[self.families_seen - 1].family
    }

    /// Drops what follows the samples, series and families this push has seen so far.
    fn cut(&mut self) {
        self.entries.truncate(self.samples_seen);
        self.blocks.truncate(self.entries.last().map_or(0, |e| e.end as usize));
        self.series.truncate(self.series_seen);
        self.families.truncate(self.families_seen);
    }

    /// The rest of the push is encoded afresh; a kept push records it in place of the old.
    fn miss(&mut self) {
        self.hitting = false;
        if self.keep {
            self.cut();
        }
    }

    /// A family starts. True when it is the same as the last push's at this place (its samples
    /// may then hit); false when the encoder must set itself up for `f`.
    pub(super) fn enter_family(&mut self, id: FamilyId, f: &Family) -> bool {
        self.prev = None;
        if self.hitting {
            if self.families.get(self.families_seen).is_some_and(|c| c.id == id) {
                self.families_seen += 1;
                return true;
            }
            self.miss();
        }
        if self.recording {
            self.families.push(FamilyKey::of(id, f));
        }
        self.families_seen += 1;
        false
    }

    /// Looks `s` up at this place of the last push.
    #[inline]
    pub(super) fn lookup(&mut self, s: &Sample<'_>) -> Lookup {
        if !self.hitting {
            return Lookup::Miss;
        }
        let Some(&e) = self.entries.get(self.samples_seen) else {
            self.miss();
            return Lookup::Switch;
        };
        let same = self.prev == Some(s.series);
        let series = if same {
            e.series as usize + 1 == self.series_seen
        } else {
            e.series as usize == self.series_seen && {
                let k = self.series[e.series as usize];
                k.family as usize + 1 == self.families_seen && k.id == s.series
            }
        };
        // The suffix and the `le`/`quantile` value at a place of a series follow from the family
        // (its kind, bounds and native setting, fixed for its id), so these two checks only keep the
        // cache from depending on how `walk` orders and spells them.
        // Only an entry of this family has its `extra` in this family's list: checked after `series`.
        let extra = series
            && match (s.extra, e.extra) {
                (None, NO_EXTRA) => true,
                (Some((n, v)), i) if i != NO_EXTRA => self
                    .families_seen
                    .checked_sub(1)
                    .and_then(|f| self.families.get(f)?.extras.get(usize::from(i)))
                    .is_some_and(|(cn, cv)| *cn == n && **cv == *v),
                _ => false,
            };
        if !(series && extra && usize::from(e.slot) == suffix_slot(s.suffix)) {
            self.miss();
            return Lookup::Switch;
        }
        if !same {
            self.series_seen += 1;
            self.prev = Some(s.series);
        }
        let start = self.samples_seen.checked_sub(1).map_or(0, |p| self.entries[p].end as usize);
        self.current = (true, start, e.end as usize, start + e.split as usize);
        self.samples_seen += 1;
        self.hits += 1;
        Lookup::Hit
    }

    /// Where the encoder writes the block of a sample it encodes afresh (label refs field, then
    /// metadata field), after the bytes already there; [`LabelBlocks::close_block`] then says
    /// where the label refs end.
    pub(super) fn open_block(&mut self) -> &mut Vec<u8> {
        #[cfg(test)]
        let max = self.max_bytes.unwrap_or(MAX_BYTES);
        #[cfg(not(test))]
        let max = MAX_BYTES;
        if self.recording && self.footprint() > max {
            self.recording = false;
        }
        if self.recording {
            self.current.1 = self.blocks.len();
            &mut self.blocks
        } else {
            self.scratch.clear();
            self.current.1 = 0;
            &mut self.scratch
        }
    }

    /// The block of `s` is written, its label refs field `split` bytes long, and its request's
    /// table holds `symbols` symbols: records it when the push is kept.
    pub(super) fn close_block(&mut self, s: &Sample<'_>, split: usize, symbols: usize) {
        let buf = if self.recording { &self.blocks } else { &self.scratch };
        self.current = (self.recording, self.current.1, buf.len(), self.current.1 + split);
        if !self.recording {
            return;
        }
        let f = self.families_seen - 1;
        let extra = match s.extra {
            None => Some(NO_EXTRA),
            Some((n, v)) => {
                let extras = &mut self.families[f].extras;
                let i = extras.iter().position(|(cn, cv)| *cn == n && **cv == *v).unwrap_or_else(|| {
                    extras.push((n, v.into()));
                    extras.len() - 1
                });
                u16::try_from(i).ok().filter(|&i| i != NO_EXTRA)
            }
        };
        let (Some(extra), Ok(split), Ok(symbols), Ok(end)) =
            (extra, u32::try_from(split), u32::try_from(symbols), u32::try_from(self.blocks.len()))
        else {
            // Past what an entry can say: keep what is recorded so far, as past MAX_BYTES.
            self.scratch.clear();
            self.scratch.extend_from_slice(&self.blocks[self.current.1..]);
            self.blocks.truncate(self.current.1);
            self.current = (false, 0, self.scratch.len(), split);
            self.recording = false;
            return;
        };
        if self.prev != Some(s.series) {
            self.series.push(SeriesKey { family: f as u32, id: s.series });
            self.series_seen += 1;
            self.prev = Some(s.series);
        }
        let series = (self.series_seen - 1) as u32;
        let slot = suffix_slot(s.suffix) as u8;
        self.entries.push(Entry { series, end, split, symbols, extra, slot });
        self.samples_seen += 1;
    }

    /// The current sample's block: its label refs field and its metadata field.
    #[inline]
    pub(super) fn block(&self) -> (&[u8], &[u8]) {
        let (kept, start, end, split) = self.current;
        let b = if kept { &self.blocks[start..end] } else { &self.scratch[start..end] };
        b.split_at(split - start)
    }

    /// Bytes held by what is kept.
    fn footprint(&self) -> usize {
        self.blocks.len() + self.entries.len() * std::mem::size_of::<Entry>() + self.series.len() * std::mem::size_of::<SeriesKey>()
    }
}

#[cfg(test)]
mod tests;
