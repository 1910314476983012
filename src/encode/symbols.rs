//! The symbols table of a remote-write 2.0 request: every string once, `""` first, looked up by
//! hash without allocating a key per string.
//!
//! Strings live end to end in one buffer; the hash table holds only their indices and compares
//! candidates against the buffer, so interning a string already present costs one hash and one
//! compare, and a new one a copy into the buffer.

use hashbrown::HashTable;
use std::hash::BuildHasher;

/// An interned string table, reset per request.
#[derive(Default)]
pub struct Symbols {
    bytes: String,
    /// (start, end) of each symbol in `bytes`.
    spans: Vec<(u32, u32)>,
    table: HashTable<u32>,
    hasher: foldhash::fast::FixedState,
    /// Reused to join the parts of a symbol.
    scratch: String,
}

impl std::fmt::Debug for Symbols {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbols").field("len", &self.spans.len()).finish()
    }
}

impl Symbols {
    /// An empty table holding only `""` (ref 0).
    pub fn new() -> Symbols {
        let mut s = Symbols::default();
        s.clear();
        s
    }

    /// Empties the table, keeping its memory; `""` is ref 0 again.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.table.clear();
        self.intern_str("");
    }

    /// The ref of `s`, adding it if new.
    ///
    /// ```
    /// let mut t = kdbprom::encode::symbols::Symbols::new();
    /// assert_eq!((t.intern("job"), t.intern("eod"), t.intern("job"), t.intern("")), (1, 2, 1, 0));
    /// assert_eq!(t.iter().collect::<Vec<_>>(), ["", "job", "eod"]);
    /// ```
    pub fn intern(&mut self, s: &str) -> u32 {
        self.intern_str(s)
    }

    /// The ref of the concatenation of `parts` (a name and its `_bucket` suffix).
    pub fn intern_parts(&mut self, parts: &[&str]) -> u32 {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        parts.iter().for_each(|p| scratch.push_str(p));
        let i = self.intern_str(&scratch);
        self.scratch = scratch;
        i
    }

    fn intern_str(&mut self, s: &str) -> u32 {
        let hash = self.hasher.hash_one(s.as_bytes());
        let (bytes, spans) = (&self.bytes, &self.spans);
        if let Some(&i) = self.table.find(hash, |&i| {
            let (a, b) = spans[i as usize];
            &bytes.as_bytes()[a as usize..b as usize] == s.as_bytes()
        }) {
            return i;
        }
        let start = self.bytes.len() as u32;
        self.bytes.push_str(s);
        let i = self.spans.len() as u32;
        self.spans.push((start, self.bytes.len() as u32));
        let (bytes, spans, hasher) = (&self.bytes, &self.spans, &self.hasher);
        self.table.insert_unique(hash, i, |&j| {
            let (a, b) = spans[j as usize];
            hasher.hash_one(&bytes.as_bytes()[a as usize..b as usize])
        });
        i
    }

    /// Symbols in ref order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.spans.iter().map(|&(a, b)| &self.bytes[a as usize..b as usize])
    }

    /// Number of symbols, `""` included.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Never true: `""` is always there.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}
