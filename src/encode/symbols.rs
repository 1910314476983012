//! The symbols table of a remote-write 2.0 request: every string once, `""` first, looked up by
//! hash without allocating a key per string, kept already encoded as the request's field 4.
//!
//! Strings live end to end in one buffer, each behind its protobuf key and length, so the table
//! goes into the request with one copy ([`Symbols::encoded`]); the hash table holds only their
//! indices and compares candidates against the buffer, so interning a string already present
//! costs one hash and one compare, and a new one a copy into the buffer. [`Symbols::truncate`]
//! forgets the newest symbols: an encoder that keeps a request's table from one push to the next
//! cuts it back to where the push stopped matching the last one.

use super::wire::{put_varint, varint_len};
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// `Request.symbols` (field 4, length-delimited).
const SYMBOL_KEY: u8 = 4 << 3 | 2;

/// An interned string table, reset per request.
#[derive(Default)]
pub struct Symbols {
    /// Every symbol as field 4 of the request: key, length, bytes.
    bytes: Vec<u8>,
    /// (start, end) in `bytes` of each symbol's own bytes; the entry of symbol `i` starts where
    /// symbol `i - 1` ends.
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
    /// assert_eq!(t.encoded(), b"\x22\x00\x22\x03job\x22\x03eod");
    /// t.truncate(2);
    /// assert_eq!((t.intern("sod"), t.intern("job")), (2, 1));
    /// assert_eq!(t.iter().collect::<Vec<_>>(), ["", "job", "sod"]);
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
            &bytes[a as usize..b as usize] == s.as_bytes()
        }) {
            return i;
        }
        self.bytes.reserve(1 + varint_len(s.len() as u64) + s.len());
        self.bytes.push(SYMBOL_KEY);
        put_varint(&mut self.bytes, s.len() as u64);
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(s.as_bytes());
        let i = self.spans.len() as u32;
        self.spans.push((start, self.bytes.len() as u32));
        let (bytes, spans, hasher) = (&self.bytes, &self.spans, &self.hasher);
        self.table.insert_unique(hash, i, |&j| {
            let (a, b) = spans[j as usize];
            hasher.hash_one(&bytes[a as usize..b as usize])
        });
        i
    }

    /// Keeps the first `n` symbols (`""` always), as if the others had never been interned.
    pub fn truncate(&mut self, n: usize) {
        let n = n.max(1);
        while self.spans.len() > n {
            let i = self.spans.len() - 1;
            let (a, b) = self.spans[i];
            let hash = self.hasher.hash_one(&self.bytes[a as usize..b as usize]);
            if let Ok(entry) = self.table.find_entry(hash, |&j| j as usize == i) {
                entry.remove();
            }
            self.spans.pop();
            self.bytes.truncate(self.spans[i - 1].1 as usize);
        }
    }

    /// The whole table as the request's field 4, in ref order.
    pub fn encoded(&self) -> &[u8] {
        &self.bytes
    }

    /// Symbols in ref order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.spans.iter().map(|&(a, b)| std::str::from_utf8(&self.bytes[a as usize..b as usize]).expect("interned from a str"))
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
