//! A q host without q: KX's libe.so provides the K API, and the real libkdbprom.so is loaded into it.
//!
//! Only exported symbols are used, exactly as q calls them. A null result means "look at ee(NULL)":
//! an error if it carries a message, `::` otherwise (the extension returns (K)0 for `::`).
#![allow(dead_code, unsafe_code)]

pub mod life;
mod lognormal;

#[allow(unused_imports)] // each test binary includes this module; two of them sample latencies
pub use lognormal::lognormal;

use kdbplus::api::{K, S};
use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_LOCAL, RTLD_NOW};
use std::ffi::{CStr, CString, c_char};
use std::sync::{Mutex, MutexGuard, OnceLock};

type K1 = extern "C" fn(K) -> K;
type K2 = extern "C" fn(K, K) -> K;
type K3 = extern "C" fn(K, K, K) -> K;
type K4 = extern "C" fn(K, K, K, K) -> K;
type K5 = extern "C" fn(K, K, K, K, K) -> K;

/// libe's K API and the extension's exports.
pub struct Host {
    libe: Library,
    ext: Library,
    pub kf: extern "C" fn(f64) -> K,
    pub kj: extern "C" fn(i64) -> K,
    pub ki: extern "C" fn(i32) -> K,
    pub kh: extern "C" fn(i32) -> K,
    pub ke: extern "C" fn(f64) -> K,
    pub kb: extern "C" fn(i32) -> K,
    pub ka: extern "C" fn(i32) -> K,
    pub ktj: extern "C" fn(i32, i64) -> K,
    pub ktn: extern "C" fn(i32, i64) -> K,
    pub kp: extern "C" fn(*const c_char) -> K,
    pub ks: extern "C" fn(*const c_char) -> K,
    pub ss: extern "C" fn(*const c_char) -> S,
    pub xd: extern "C" fn(K, K) -> K,
    pub xt: extern "C" fn(K) -> K,
    pub ee: extern "C" fn(K) -> K,
    pub r0: extern "C" fn(K),
    pub r1: extern "C" fn(K) -> K,
    pub setm: extern "C" fn(i32) -> i32,
}

// SAFETY: the function pointers are plain code addresses; libe's allocator is thread-safe (setm(1)).
unsafe impl Sync for Host {}
unsafe impl Send for Host {}

/// Path of the extension cargo just built. deps/ holds the fresh copy (tests live there; examples
/// and benches reach it as ../deps); the uplifted copy one level up is refreshed only by `cargo build --lib`.
pub fn so_path() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    for p in [dir.join("libkdbprom.so"), dir.join("../deps/libkdbprom.so"), dir.join("../libkdbprom.so")] {
        if p.exists() {
            return p;
        }
    }
    panic!("libkdbprom.so not found next to {}", exe.display());
}

/// Set by [`host`] once it has chosen the process's state directory: child processes inherit both,
/// so a second process (a spool replay, the lock warning) shares the first one's, unless the test
/// gives the child an `XDG_STATE_HOME` of its own.
const STATE_CHOSEN: &str = "HOST_HARNESS_STATE_CHOSEN";

pub fn host() -> &'static Host {
    static H: OnceLock<Host> = OnceLock::new();
    H.get_or_init(|| {
        // The spool is on by default in $XDG_STATE_HOME/kdbprom: each test process gets its own, so
        // tests never replay another binary's files nor write the user's home.
        if std::env::var_os(STATE_CHOSEN).is_none() {
            let dir = std::env::temp_dir().join(format!("kdbprom-host-state-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            // SAFETY: set once, before libe or the extension is loaded and before any agent thread
            // exists; test threads read the environment only through std, whose lock covers this.
            unsafe {
                std::env::set_var("XDG_STATE_HOME", &dir);
                std::env::set_var(STATE_CHOSEN, "1");
            }
        }
        let libe_path = env!("KX_LIBE_PATH");
        assert!(std::path::Path::new(libe_path).exists(), "{libe_path} is missing: run scripts/fetch-libe.sh (scripts/test.sh does)");
        // SAFETY: libe first and global, so the extension's undefined K symbols bind to it; never closed.
        unsafe {
            let libe = Library::open(Some(libe_path), RTLD_NOW | RTLD_GLOBAL).unwrap();
            let ext = Library::open(Some(so_path()), RTLD_NOW | RTLD_LOCAL).unwrap();
            macro_rules! f {
                ($n:literal) => {
                    *libe.get($n).unwrap()
                };
            }
            let h = Host {
                kf: f!(b"kf"),
                kj: f!(b"kj"),
                ki: f!(b"ki"),
                kh: f!(b"kh"),
                ke: f!(b"ke"),
                kb: f!(b"kb"),
                ka: f!(b"ka"),
                ktj: f!(b"ktj"),
                ktn: f!(b"ktn"),
                kp: f!(b"kp"),
                ks: f!(b"ks"),
                ss: f!(b"ss"),
                xd: f!(b"xD"),
                xt: f!(b"xT"),
                ee: f!(b"ee"),
                r0: f!(b"r0"),
                r1: f!(b"r1"),
                setm: f!(b"setm"),
                libe,
                ext,
            };
            // q's secondary threads intern symbols too; libe needs this before threads start.
            (h.setm)(1);
            h
        }
    })
}

/// One call made through [`Host::call`]: the export, its rank, and its first argument when that is
/// a symbol (the call form: `` .prom.x.decl[`histogram;…] ``, `` .prom.x.log[`WARN;…] ``).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    pub export: String,
    pub rank: usize,
    pub first: Option<String>,
}

static CALLS: Mutex<std::collections::BTreeSet<Call>> = Mutex::new(std::collections::BTreeSet::new());

/// Every distinct call this test process made through [`Host::call`] (and so `ok`/`err`).
pub fn calls() -> std::collections::BTreeSet<Call> {
    CALLS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Tests share one loaded .so and so one agent: run them one at a time.
pub fn lock() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|p| p.into_inner())
}

impl Host {
    /// The export `name` as a function pointer of type T.
    pub fn export<T: Copy>(&self, name: &str) -> T {
        // SAFETY: the caller names an export of the rank matching T.
        unsafe { *self.ext.get::<T>(name.as_bytes()).unwrap_or_else(|e| panic!("export {name}: {e}")) }
    }

    /// Turns an export's result into Ok(K) (null for `::`) or Err(q error text).
    pub fn result(&self, r: K) -> Result<K, String> {
        if !r.is_null() {
            return Ok(r);
        }
        let e = (self.ee)(std::ptr::null_mut());
        // SAFETY: ee returns a -128 atom whose symbol is the pending message or null.
        let msg = unsafe { (*e).value.symbol };
        let out = if msg.is_null() { Ok(std::ptr::null_mut()) } else { Err(unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned()) };
        (self.r0)(e);
        out
    }

    /// Calls export `name` with borrowed arguments (they are freed here afterwards, as q would).
    pub fn call(&self, name: &str, args: &[K]) -> Result<K, String> {
        let first = args.first().filter(|&&a| !a.is_null() && self.qtype(a) == -11).map(|&a| self.sym(a));
        CALLS.lock().unwrap_or_else(|p| p.into_inner()).insert(Call { export: name.to_string(), rank: args.len(), first });
        let r = match args.len() {
            1 => self.export::<K1>(name)(args[0]),
            2 => self.export::<K2>(name)(args[0], args[1]),
            3 => self.export::<K3>(name)(args[0], args[1], args[2]),
            4 => self.export::<K4>(name)(args[0], args[1], args[2], args[3]),
            5 => self.export::<K5>(name)(args[0], args[1], args[2], args[3], args[4]),
            n => panic!("rank {n}"),
        };
        let r = self.result(r);
        for &a in args {
            (self.r0)(a);
        }
        r
    }

    /// Calls and expects success.
    pub fn ok(&self, name: &str, args: &[K]) -> K {
        self.call(name, args).unwrap_or_else(|e| panic!("{name}: '{e}"))
    }

    /// Calls and expects a q error; returns its text.
    pub fn err(&self, name: &str, args: &[K]) -> String {
        match self.call(name, args) {
            Ok(_) => panic!("{name} succeeded, an error was expected"),
            Err(e) => e,
        }
    }

    // Constructors (fresh objects, refcount 0).
    pub fn f(&self, x: f64) -> K {
        (self.kf)(x)
    }
    pub fn j(&self, x: i64) -> K {
        (self.kj)(x)
    }
    pub fn i(&self, x: i32) -> K {
        (self.ki)(x)
    }
    pub fn b(&self, x: bool) -> K {
        (self.kb)(x.into())
    }
    pub fn n(&self, ns: i64) -> K {
        (self.ktj)(-16, ns)
    }
    pub fn s(&self, x: &str) -> K {
        let c = CString::new(x).unwrap();
        (self.ks)(c.as_ptr())
    }
    pub fn str(&self, x: &str) -> K {
        let c = CString::new(x).unwrap();
        (self.kp)(c.as_ptr())
    }
    /// `::`
    pub fn id(&self) -> K {
        let k = (self.ka)(101);
        // SAFETY: fresh atom.
        unsafe { (*k).value.byte = 0 };
        k
    }
    pub fn vec<T: Copy>(&self, t: i32, xs: &[T]) -> K {
        let k = (self.ktn)(t, xs.len() as i64);
        // SAFETY: ktn allocated xs.len() items of the type's width.
        unsafe { std::slice::from_raw_parts_mut((*k).value.list.G0.as_mut_ptr().cast::<T>(), xs.len()).copy_from_slice(xs) };
        k
    }
    pub fn floats(&self, xs: &[f64]) -> K {
        self.vec(9, xs)
    }
    pub fn longs(&self, xs: &[i64]) -> K {
        self.vec(7, xs)
    }
    pub fn syms(&self, xs: &[&str]) -> K {
        let ptrs: Vec<S> = xs.iter().map(|x| (self.ss)(CString::new(*x).unwrap().as_ptr())).collect();
        self.vec(11, &ptrs)
    }
    pub fn list(&self, xs: &[K]) -> K {
        self.vec(0, xs)
    }
    pub fn dict(&self, keys: &[&str], vals: &[K]) -> K {
        (self.xd)(self.syms(keys), self.list(vals))
    }

    /// A char atom (`"t"` in q is a char, not a string).
    pub fn c(&self, x: u8) -> K {
        let k = (self.ka)(-10);
        // SAFETY: fresh char atom: its byte is the value.
        unsafe { (*k).value.byte = x };
        k
    }

    // Builders that make what q makes: in q, `(a;b;…)`, `enlist` and `!` collapse lists, so a
    // config written in q reaches kdbprom as vectors and tables, not the general lists and
    // dictionaries `list`/`dict` make. Each takes ownership of its arguments, as q's own do.

    /// `(x0;x1;…)` as q makes it: atoms of one type are a vector of that type; dictionaries with
    /// the same symbol keys in the same order are a table, each column made the same way from the
    /// dictionaries' values (so dictionaries inside become a table column); anything else is a
    /// general list. One item is `enlist x`; none is `()`.
    pub fn qlist(&self, xs: &[K]) -> K {
        match xs {
            [] => self.list(&[]),
            [x] => self.enlist(*x),
            _ if self.same_atoms(xs) => self.vector_of(xs),
            _ if self.conforming(xs) => {
                let keys = (self.r1)(self.dict_parts(xs[0]).0);
                let n = self.count(keys);
                let cols: Vec<K> =
                    (0..n).map(|j| self.qlist(&xs.iter().map(|&d| self.index(self.dict_parts(d).1, j)).collect::<Vec<_>>())).collect();
                xs.iter().for_each(|&d| (self.r0)(d));
                (self.xt)((self.xd)(keys, self.list(&cols)))
            }
            _ => self.list(xs),
        }
    }

    /// `enlist x` as q makes it: an atom is a one-item vector of its type; a dictionary with
    /// symbol keys is a one-row table, each column `enlist` of its value (a dictionary value a
    /// one-row table column, a string a general list of one string); anything else (a string, a
    /// vector, a table, `::`) is a one-item general list.
    pub fn enlist(&self, x: K) -> K {
        let t = self.qtype(x);
        if t < 0 && t != -128 {
            return self.vector_of(&[x]);
        }
        if t == 99 && self.qtype(self.dict_parts(x).0) == 11 {
            let (keys, vals) = self.dict_parts(x);
            let keys = (self.r1)(keys);
            let cols: Vec<K> = (0..self.count(keys)).map(|j| self.enlist(self.index(vals, j))).collect();
            (self.r0)(x);
            return (self.xt)((self.xd)(keys, self.list(&cols)));
        }
        self.list(&[x])
    }

    /// `` `k0`k1…!(v0;v1;…) `` as q makes it: the values collapse as [`Host::qlist`] says (so
    /// values that are dictionaries with the same keys are a table: a dictionary of rows).
    pub fn qdict(&self, keys: &[&str], vals: &[K]) -> K {
        (self.xd)(self.syms(keys), self.qlist(vals))
    }

    /// `` enlist `k0`k1…!(v0;v1;…) ``: a one-row table.
    pub fn enlist_dict(&self, keys: &[&str], vals: &[K]) -> K {
        self.enlist(self.qdict(keys, vals))
    }

    /// `(d0;d1;…)` of dictionaries as q makes it: a table when they all have the same keys in the
    /// same order, else a general list of dictionaries.
    pub fn list_of_dicts(&self, dicts: &[K]) -> K {
        self.qlist(dicts)
    }

    /// A keyed table as q's `n!t` makes it: the first `n` columns of table `t` key it.
    pub fn xkey(&self, n: usize, t: K) -> K {
        assert_eq!(self.qtype(t), 98);
        // SAFETY: a table holds its column dictionary.
        let (names, cols) = self.dict_parts(unsafe { (*t).value.table });
        let (names, cols) = (self.syms_of(names), self.items(cols).to_vec());
        let part = |r: std::ops::Range<usize>| {
            let ks: Vec<&str> = names[r.clone()].iter().map(String::as_str).collect();
            (self.xt)((self.xd)(self.syms(&ks), self.list(&cols[r].iter().map(|&c| (self.r1)(c)).collect::<Vec<_>>())))
        };
        let k = (self.xd)(part(0..n), part(n..names.len()));
        (self.r0)(t);
        k
    }

    /// A dictionary's keys and values (borrowed).
    fn dict_parts(&self, d: K) -> (K, K) {
        let kv = self.items(d);
        (kv[0], kv[1])
    }

    /// Items of a list or vector, or rows of a table.
    fn count(&self, x: K) -> usize {
        if self.qtype(x) == 98 {
            // SAFETY: a table holds its column dictionary; its columns have the table's length.
            let cols = self.dict_parts(unsafe { (*x).value.table }).1;
            return self.items(cols).first().map_or(0, |&c| self.count(c));
        }
        // SAFETY: lists and vectors have a count.
        unsafe { (*x).value.list.n as usize }
    }

    /// `x j` as q indexes: a general list's item (a new reference), a vector's item as an atom,
    /// a table's row as a dictionary.
    fn index(&self, x: K, j: usize) -> K {
        let t = self.qtype(x);
        match t {
            0 => (self.r1)(self.items(x)[j]),
            98 => {
                // SAFETY: a table holds its column dictionary.
                let (names, cols) = self.dict_parts(unsafe { (*x).value.table });
                let vals: Vec<K> = self.items(cols).iter().map(|&c| self.index(c, j)).collect();
                (self.xd)((self.r1)(names), self.list(&vals))
            }
            1..=19 => {
                let w = width(t);
                let a = (self.ka)(-(t as i32));
                // SAFETY: item j of a vector of width w is copied into the value of a fresh atom of its type.
                unsafe {
                    let src = (*x).value.list.G0.as_ptr().add(j * w);
                    std::ptr::copy_nonoverlapping(src, (&raw mut (*a).value).cast::<u8>(), w);
                }
                a
            }
            _ => panic!("index of q type {t}"),
        }
    }

    /// True when every item is an atom of one type.
    fn same_atoms(&self, xs: &[K]) -> bool {
        let t = self.qtype(xs[0]);
        t < 0 && t != -128 && xs.iter().all(|&x| self.qtype(x) == t)
    }

    /// True when every item is a dictionary with the same symbol keys in the same order.
    fn conforming(&self, xs: &[K]) -> bool {
        let keys = |d: K| (self.qtype(d) == 99 && self.qtype(self.dict_parts(d).0) == 11).then(|| self.syms_of(self.dict_parts(d).0));
        let first = keys(xs[0]);
        first.is_some() && xs.iter().all(|&d| keys(d) == first)
    }

    /// A vector of the atoms' type holding their values; frees the atoms.
    fn vector_of(&self, atoms: &[K]) -> K {
        let t = -self.qtype(atoms[0]);
        let w = width(t);
        let v = (self.ktn)(t.into(), atoms.len() as i64);
        for (j, &a) in atoms.iter().enumerate() {
            // SAFETY: the atom's value (w bytes) goes to item j of a fresh vector of its type.
            unsafe { std::ptr::copy_nonoverlapping((&raw const (*a).value).cast::<u8>(), (*v).value.list.G0.as_mut_ptr().add(j * w), w) };
            (self.r0)(a);
        }
        v
    }

    // Readers.
    pub fn qtype(&self, k: K) -> i8 {
        // SAFETY: valid K.
        unsafe { (*k).qtype }
    }
    pub fn refcount(&self, k: K) -> i32 {
        // SAFETY: valid K.
        unsafe { (*k).refcount }
    }
    pub fn long(&self, k: K) -> i64 {
        assert_eq!(self.qtype(k), -7);
        // SAFETY: checked type.
        unsafe { (*k).value.long }
    }
    pub fn string(&self, k: K) -> String {
        assert_eq!(self.qtype(k), 10);
        // SAFETY: checked type.
        unsafe { String::from_utf8_lossy(std::slice::from_raw_parts((*k).value.list.G0.as_ptr(), (*k).value.list.n as usize)).into_owned() }
    }
    pub fn sym(&self, k: K) -> String {
        assert_eq!(self.qtype(k), -11);
        // SAFETY: checked type.
        unsafe { CStr::from_ptr((*k).value.symbol).to_string_lossy().into_owned() }
    }
    fn items(&self, k: K) -> &[K] {
        // SAFETY: caller passes a general list.
        unsafe { std::slice::from_raw_parts((*k).value.list.G0.as_ptr().cast::<K>(), (*k).value.list.n as usize) }
    }
    pub fn boolean(&self, k: K) -> bool {
        assert_eq!(self.qtype(k), -1);
        // SAFETY: checked type.
        unsafe { (*k).value.byte != 0 }
    }
    pub fn float(&self, k: K) -> f64 {
        assert_eq!(self.qtype(k), -9);
        // SAFETY: checked type.
        unsafe { (*k).value.float }
    }
    /// A symbol vector's items.
    pub fn syms_of(&self, k: K) -> Vec<String> {
        assert_eq!(self.qtype(k), 11);
        // SAFETY: checked type: n interned symbol pointers.
        let n = unsafe { (*k).value.list.n } as usize;
        (0..n).map(|i| unsafe { CStr::from_ptr(*(*k).value.list.G0.as_ptr().cast::<S>().add(i)) }.to_string_lossy().into_owned()).collect()
    }
    /// A `sym!list` dictionary as (key, value) pairs.
    pub fn dict_items(&self, k: K) -> Vec<(String, K)> {
        assert_eq!(self.qtype(k), 99);
        let kv = self.items(k);
        let n = unsafe { (*kv[0]).value.list.n } as usize;
        let keys: Vec<String> = (0..n)
            // SAFETY: keys are a symbol vector.
            .map(|i| unsafe { CStr::from_ptr(*(*kv[0]).value.list.G0.as_ptr().cast::<S>().add(i)).to_string_lossy().into_owned() })
            .collect();
        keys.into_iter().zip(self.items(kv[1]).iter().copied()).collect()
    }
    /// The long-valued entries of a dictionary as (key, value).
    pub fn long_dict(&self, k: K) -> Vec<(String, i64)> {
        self.dict_items(k).into_iter().filter(|(_, v)| self.qtype(*v) == -7).map(|(n, v)| (n, self.long(v))).collect()
    }
}

/// Bytes per item of a vector of q type `t`.
fn width(t: i8) -> usize {
    match t {
        1 | 4 | 10 => 1,
        5 => 2,
        6 | 8 | 13 | 14 | 17 | 18 | 19 => 4,
        2 => 16,
        _ => 8,
    }
}

/// A remote-write target dictionary: `url`, `name` and `extra` keys (`protocol`, `queue`, …).
pub fn rw(h: &Host, url: &str, name: &str, extra: &[(&str, K)]) -> K {
    let mut keys = vec!["url", "name"];
    let mut vals = vec![h.str(url), h.s(name)];
    for (k, v) in extra {
        keys.push(k);
        vals.push(*v);
    }
    h.dict(&keys, &vals)
}
