//! Reading the arguments q passes: with [`super::build`], the only code that dereferences K.
//!
//! An export reads its arguments through [`KRef`], a K borrowed for the export call: each export
//! wraps each argument once with [`KRef::new`], the one `unsafe` step, and every reader is a safe
//! method whose results live no longer than the call. Readers check the type byte before they
//! read the matching union field, and read the nulls and infinities of shorts, ints and longs
//! alike in atoms, vectors and mixed lists ([`Whole`]). A value of the wrong type is named by
//! [`must_be`], the one text for it.

use kdbplus::api::{K, S, k0};
use serde_json::{Map, Number, Value};
use std::borrow::Cow::{self, Borrowed, Owned};
use std::ffi::CStr;
use std::fmt::{self, Display};
use std::marker::PhantomData;

/// A q type problem, described for the error text.
pub type Bad = String;

/// q type codes used here.
pub mod t {
    pub const LIST: i8 = 0;
    pub const BOOL: i8 = 1;
    pub const SHORT: i8 = 5;
    pub const INT: i8 = 6;
    pub const LONG: i8 = 7;
    pub const REAL: i8 = 8;
    pub const FLOAT: i8 = 9;
    pub const CHAR: i8 = 10;
    pub const SYMBOL: i8 = 11;
    pub const TIMESPAN: i8 = 16;
    pub const TABLE: i8 = 98;
    pub const DICT: i8 = 99;
    pub const IDENTITY: i8 = 101;
}

/// The one text for a value of the wrong type: `{what} must be {want}, not {got}`, where `got` is
/// a [`TypeName`] ("a long atom", "an int vector", "::") or, where the value says more, the value.
#[cold]
#[inline(never)]
pub fn must_be(what: impl Display, want: &str, got: impl Display) -> Bad {
    format!("{what} must be {want}, not {got}")
}

/// A value of the right type that is refused: `{what} must not be {not}` (null, infinite, ...).
#[cold]
#[inline(never)]
fn must_not(what: impl Display, not: impl Display) -> Bad {
    format!("{what} must not be {not}")
}

/// A K object q lent to the running export, for `'a`: at most the export call.
///
/// `Copy`, and neither `Send` nor `Sync`: it stays on the thread q called the export on. Children
/// (list items, a dictionary's keys and values) are `KRef<'a>` too, and every `&str`, slice and
/// [`Item`] read from it is borrowed for `'a` at most.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct KRef<'a>(K, PhantomData<&'a k0>);

/// The items of a list, by type.
enum Items<'a> {
    Obj(&'a [KRef<'a>]),
    Bool(&'a [u8]),
    Char(&'a [u8]),
    Short(&'a [i16]),
    Int(&'a [i32]),
    Long(&'a [i64]),
    Real(&'a [f32]),
    Float(&'a [f64]),
    Sym(&'a [Sym<'a>]),
    Span(&'a [i64]),
    /// A vector of any other type: its length.
    Other(usize),
}

impl<'a> KRef<'a> {
    /// Borrows an export's argument for the call: the one unsafe step (children are read from
    /// their parent, under this same guarantee).
    ///
    /// # Safety
    /// `*k` is an argument q passed to the running export: a valid K object (so are its items and
    /// children) that q keeps alive and unchanged until the export returns. Borrowing the parameter
    /// itself bounds `'a` by the call.
    #[inline(always)]
    pub unsafe fn new(k: &'a K) -> Self {
        debug_assert!(!k.is_null());
        KRef(*k, PhantomData)
    }

    /// The q type code.
    #[inline]
    pub fn qtype(self) -> i8 {
        // SAFETY: a valid K object's header is readable (KRef::new).
        unsafe { (*self.0).qtype }
    }

    /// The q type, for error texts.
    pub fn type_name(self) -> TypeName {
        TypeName(self.qtype())
    }

    /// `x` is `::` (or a projection hole).
    pub fn is_identity(self) -> bool {
        self.qtype() == t::IDENTITY
    }

    /// The `n` items after a list's header, read as `T`s.
    ///
    /// # Safety
    /// `self` has the list layout and its items are `T`s: a general list or a dictionary (the
    /// layout of a 2-item general list) with `T` = `KRef`, or a typed vector of `T`.
    unsafe fn slice<T>(self) -> &'a [T] {
        // SAFETY: per the caller, `n` items of T follow the header in the object's allocation. The
        // place is reached through the raw pointer (no reference to the one-byte G0 is made), so
        // the slice may span all of them; they live as long as the object, for 'a (KRef::new).
        unsafe {
            let list = &raw const (*self.0).value.list;
            std::slice::from_raw_parts((&raw const (*list).G0).cast::<T>(), (*list).n as usize)
        }
    }

    /// The items of a general list or a typed vector; None for anything else.
    fn items(self) -> Option<Items<'a>> {
        // SAFETY: each arm reads the items of the list type it matched, as that type's item type;
        // an `Other` vector is read as bytes only for its length.
        unsafe {
            Some(match self.qtype() {
                t::LIST => Items::Obj(self.slice()),
                t::BOOL => Items::Bool(self.slice()),
                t::CHAR => Items::Char(self.slice()),
                t::SHORT => Items::Short(self.slice()),
                t::INT => Items::Int(self.slice()),
                t::LONG => Items::Long(self.slice()),
                t::REAL => Items::Real(self.slice()),
                t::FLOAT => Items::Float(self.slice()),
                t::SYMBOL => Items::Sym(self.slice()),
                t::TIMESPAN => Items::Span(self.slice()),
                2..=19 => Items::Other(self.slice::<u8>().len()),
                _ => return None,
            })
        }
    }

    /// A dictionary's keys and values (a keyed table's key and value tables); None for anything else.
    pub fn dict(self) -> Option<(KRef<'a>, KRef<'a>)> {
        if self.qtype() != t::DICT {
            return None;
        }
        // SAFETY: a dictionary has the layout of a 2-item general list: keys, then values.
        let kv = unsafe { self.slice::<KRef<'a>>() };
        Some((kv[0], kv[1]))
    }

    /// A general list's items; None for anything else.
    pub fn objects(self) -> Option<&'a [KRef<'a>]> {
        match self.items()? {
            Items::Obj(v) => Some(v),
            _ => None,
        }
    }

    /// A table's column names and columns (the dictionary it holds); None for anything else.
    pub fn table(self) -> Option<(KRef<'a>, KRef<'a>)> {
        if self.qtype() != t::TABLE {
            return None;
        }
        // SAFETY: type 98 holds its column dictionary in `table`, a valid object the table keeps
        // alive as long as itself.
        KRef(unsafe { (*self.0).value.table }, PhantomData).dict()
    }

    /// A short, int or long atom; None for anything else.
    #[inline]
    fn whole(self) -> Option<Whole> {
        // SAFETY: each arm reads the union field of the atom type it matched.
        unsafe {
            Some(match self.qtype() {
                v if v == -t::LONG => Whole::long((*self.0).value.long),
                v if v == -t::INT => Whole::int((*self.0).value.int),
                v if v == -t::SHORT => Whole::short((*self.0).value.short),
                _ => return None,
            })
        }
    }

    /// A symbol atom's text (the null symbol is ""); None for anything else.
    fn sym(self) -> Option<Sym<'a>> {
        // SAFETY: type -11 holds an interned symbol in `symbol`.
        (self.qtype() == -t::SYMBOL).then(|| Sym(unsafe { (*self.0).value.symbol }, PhantomData))
    }

    /// A non-null symbol atom.
    pub fn symbol(self, what: impl Display) -> Result<&'a str, Bad> {
        let s = self.sym().ok_or_else(|| must_be(&what, "a symbol", self.type_name()))?.str(&what)?;
        if s.is_empty() {
            return Err(must_not(what, "the null symbol"));
        }
        Ok(s)
    }

    /// A symbol, a string or a char (one that is text alone: ASCII, as a string's bytes are UTF-8).
    pub fn text(self, what: impl Display) -> Result<Cow<'a, str>, Bad> {
        let utf8 = |b: &'a [u8]| std::str::from_utf8(b).map(Borrowed).map_err(|_| format!("{what} is not UTF-8"));
        match self.qtype() {
            t::CHAR => utf8(self.bytes()),
            // SAFETY: type -10 holds the char in `byte`, which lives as long as the atom.
            v if v == -t::CHAR => utf8(unsafe { std::slice::from_raw_parts(&raw const (*self.0).value.byte, 1) }),
            _ => match self.sym() {
                Some(s) => s.str(&what).map(Borrowed),
                None => Err(must_be(&what, "a symbol or a string", self.type_name())),
            },
        }
    }

    /// A char vector's bytes (empty for anything else).
    fn bytes(self) -> &'a [u8] {
        match self.items() {
            Some(Items::Char(b)) => b,
            _ => &[],
        }
    }

    /// Several texts: a symbol vector, a list of strings/symbols, `()`, or one symbol or string.
    pub fn texts(self, what: impl Display) -> Result<Vec<Cow<'a, str>>, Bad> {
        match self.items() {
            Some(Items::Sym(v)) => v.iter().map(|s| s.str(&what).map(Borrowed)).collect(),
            Some(Items::Obj(v)) => v.iter().map(|e| e.text(&what)).collect(),
            Some(Items::Char(_)) => Ok(vec![self.text(what)?]),
            _ if self.sym().is_some() || self.qtype() == -t::CHAR => Ok(vec![self.text(what)?]),
            _ if self.is_identity() => Ok(vec![]),
            _ => Err(must_be(what, "symbols or strings", self.type_name())),
        }
    }

    /// The record path's common case, tested before anything else: a long atom that is neither null
    /// nor infinite (a series id, or `.prom.inc[id;1]`'s 1).
    #[inline(always)]
    pub fn plain_long(self) -> Option<i64> {
        // SAFETY: type -7 holds the long in `long`.
        let j = (self.qtype() == -t::LONG).then(|| unsafe { (*self.0).value.long })?;
        // i64::MIN is 0Nj and ±i64::MAX are ±0Wj: shifted so the lowest valid long is 0, one
        // unsigned compare refuses all three.
        (j.wrapping_sub(i64::MIN + 2) as u64 <= u64::MAX - 3).then_some(j)
    }

    /// A long atom in `0..2^32`: a series id, as the record path's common case has it (the null
    /// and the infinities are outside, so one range check refuses them too).
    #[inline(always)]
    pub fn plain_id(self) -> Option<u32> {
        // SAFETY: type -7 holds the long in `long`.
        let j = (self.qtype() == -t::LONG).then(|| unsafe { (*self.0).value.long })?;
        u32::try_from(j).ok()
    }

    /// A long (as [`KRef::plain_long`]) or float atom's value; None for anything else, which the
    /// caller then reads the general way ([`KRef::atom_f64`]).
    #[inline(always)]
    pub fn plain_f64(self) -> Option<f64> {
        if self.qtype() == -t::FLOAT {
            // SAFETY: type -9 holds the float in `float`.
            return Some(unsafe { (*self.0).value.float });
        }
        self.plain_long().map(|j| j as f64)
    }

    /// A numeric or timespan atom as f64 ([`Whole::f64`] for shorts, ints and longs, seconds for
    /// timespans); None for anything else. Never allocates.
    #[inline]
    pub fn atom_f64(self) -> Option<f64> {
        if let Some(w) = self.whole() {
            return Some(w.f64());
        }
        // SAFETY: each arm reads the union field of the atom type it matched.
        unsafe {
            Some(match self.qtype() {
                v if v == -t::FLOAT => (*self.0).value.float,
                v if v == -t::REAL => f64::from((*self.0).value.real),
                v if v == -t::TIMESPAN => Whole::long((*self.0).value.long).f64() * 1e-9,
                _ => return None,
            })
        }
    }

    /// A numeric or timespan vector's values, each read as [`KRef::atom_f64`] reads an atom:
    /// borrowed for floats, converted otherwise; a general list qualifies if every item is a
    /// numeric atom. None for anything else.
    pub fn vector_f64(self) -> Option<Cow<'a, [f64]>> {
        Some(match self.items()? {
            Items::Float(v) => Borrowed(v),
            Items::Long(v) => Owned(v.iter().map(|&j| Whole::long(j).f64()).collect()),
            Items::Int(v) => Owned(v.iter().map(|&i| Whole::int(i).f64()).collect()),
            Items::Short(v) => Owned(v.iter().map(|&h| Whole::short(h).f64()).collect()),
            Items::Real(v) => Owned(v.iter().map(|&e| f64::from(e)).collect()),
            Items::Span(v) => Owned(v.iter().map(|&j| Whole::long(j).f64() * 1e-9).collect()),
            Items::Obj(v) => Owned(v.iter().map(|e| e.atom_f64()).collect::<Option<Vec<_>>>()?),
            _ => return None,
        })
    }

    /// The (key, value) pairs of a dictionary with symbol (or string) keys; None if `self` is not
    /// a dictionary.
    pub fn dict_items(self, what: impl Display) -> Result<Option<Vec<Entry<'a>>>, Bad> {
        let Some((keys, vals)) = self.dict() else { return Ok(None) };
        let names = keys.texts(&what)?;
        if names.is_empty() {
            return Ok(Some(vec![]));
        }
        let ty = vals.qtype();
        let values: Vec<Item<'a>> = match vals.items() {
            Some(Items::Obj(v)) => v.iter().map(|&e| Item::Obj(e)).collect(),
            Some(_) => match vals.vector_f64() {
                Some(v) => v.iter().map(|&f| Item::Num(f, ty)).collect(),
                None => vec![Item::Other(ty); names.len()],
            },
            None => return Err(must_be(format_args!("{what}: the dictionary's values"), "a list", vals.type_name())),
        };
        Ok(Some(names.into_iter().zip(values).collect()))
    }

    /// A short, int or long atom that is neither null nor infinite.
    #[inline]
    pub fn long(self, what: impl Display) -> Result<i64, Bad> {
        match self.whole() {
            Some(w) => w.get().map_err(|not| must_not(what, not)),
            None => Err(must_be(what, "a long", self.type_name())),
        }
    }

    /// A boolean atom.
    pub fn boolean(self, what: impl Display) -> Result<bool, Bad> {
        if self.qtype() != -t::BOOL {
            return Err(must_be(what, "a boolean", self.type_name()));
        }
        // SAFETY: type -1 holds the boolean in `byte`.
        Ok(unsafe { (*self.0).value.byte } != 0)
    }

    /// A q value as JSON, for the configuration and the process dictionary.
    ///
    /// `what` names the value in error texts; it grows with the path into dictionaries and lists
    /// (`config.remote_write[0].headers.X`), so a nested error names its key. A null is JSON null
    /// ("not given"); an infinity is refused, as JSON has none.
    ///
    /// Every shape q makes of nested dictionaries is read: a table (what q makes of `enlist` of a
    /// dictionary, and of a list of dictionaries with the same keys) is an array of row objects,
    /// and so is a table that is a column of a table or the values of a dictionary (q collapses
    /// those lists too), at any depth. A keyed table has no JSON shape and is refused by name.
    pub fn json(self, what: &str) -> Result<Value, Bad> {
        let ty = self.qtype();
        if let Some(w) = self.whole() {
            return w.json(|| what);
        }
        if let Some((keys, vals)) = self.dict() {
            if keys.qtype() == t::TABLE {
                return Err(keyed_table(what, keys));
            }
            let names = keys.texts(what)?;
            let vals = if names.is_empty() { vec![] } else { vals.json_items(&|i| format!("{what}.{}", names.get(i).map_or("?", |n| n)))? };
            return Ok(Value::Object(names.iter().map(|n| n.to_string()).zip(vals).collect::<Map<_, _>>()));
        }
        if ty == t::TABLE {
            return Ok(Value::Array(self.rows(&|i| format!("{what}[{i}]"))?));
        }
        Ok(match ty {
            t::IDENTITY => Value::Null,
            // SAFETY: type -1 holds the boolean in `byte`.
            v if v == -t::BOOL => Value::Bool(unsafe { (*self.0).value.byte } != 0),
            v if v == -t::FLOAT || v == -t::REAL || v == -t::TIMESPAN => number(self.atom_f64().unwrap_or(f64::NAN), || what)?,
            v if v == -t::SYMBOL || v == t::CHAR || v == -t::CHAR => Value::String(self.text(what)?.into_owned()),
            // Lists and the typed vectors (chars are strings, handled above).
            0..=19 => Value::Array(self.json_items(&|i| format!("{what}[{i}]"))?),
            _ => return Err(format!("{what}: unsupported {}", self.type_name().noun())),
        })
    }

    /// A table's rows as JSON objects: row `i` holds each column's item `i`, read as
    /// [`KRef::json_items`] reads a list (so a column that is itself a table gives an object per
    /// row); `path(i)` names row `i` in error texts. The caller checked `self` is a table.
    ///
    /// `path` is a trait object: tables nest, and a generic one would be instantiated without end.
    fn rows(self, path: &dyn Fn(usize) -> String) -> Result<Vec<Value>, Bad> {
        let Some((names, cols)) = self.table() else { return Err(format!("{}: unsupported {}", path(0), self.type_name().noun())) };
        let names = names.texts(path(0))?;
        // A table's columns are always a general list, one column per name.
        let Some(Items::Obj(cols)) = cols.items() else { return Err(format!("{}: unsupported {}", path(0), cols.type_name().noun())) };
        let cols = cols.iter().zip(&names).map(|(c, n)| c.json_items(&|i| format!("{}.{n}", path(i)))).collect::<Result<Vec<_>, _>>()?;
        let rows = cols.first().map_or(0, Vec::len);
        if cols.iter().any(|c| c.len() != rows) {
            return Err(format!("{}: the table's columns differ in length", path(0)));
        }
        let mut cols: Vec<_> = cols.into_iter().map(Vec::into_iter).collect();
        Ok((0..rows)
            .map(|_| {
                Value::Object(names.iter().zip(cols.iter_mut()).map(|(n, c)| (n.to_string(), c.next().unwrap_or(Value::Null))).collect())
            })
            .collect())
    }

    /// The items of a list (general or typed: the caller checked `self` is one) or the rows of a
    /// table as JSON, each read as [`KRef::json`] reads an atom; `path(i)` names item `i` in error
    /// texts.
    fn json_items(self, path: &dyn Fn(usize) -> String) -> Result<Vec<Value>, Bad> {
        let wholes =
            |v: &mut dyn Iterator<Item = Whole>| -> Result<Vec<Value>, Bad> { v.enumerate().map(|(i, w)| w.json(|| path(i))).collect() };
        match self.items() {
            Some(Items::Obj(v)) => v.iter().enumerate().map(|(i, e)| e.json(&path(i))).collect(),
            Some(Items::Sym(v)) => v.iter().enumerate().map(|(i, s)| Ok(Value::String(s.str(path(i))?.to_owned()))).collect(),
            Some(Items::Bool(v)) => Ok(v.iter().map(|&b| Value::Bool(b != 0)).collect()),
            // A dictionary's values may be a char vector (`` `a`b!"xy" ``): one char per key, as an
            // atom each (ASCII).
            Some(Items::Char(v)) => v
                .chunks(1)
                .enumerate()
                .map(|(i, c)| std::str::from_utf8(c).map(|s| Value::String(s.to_owned())).map_err(|_| format!("{} is not UTF-8", path(i))))
                .collect(),
            Some(Items::Long(v)) => wholes(&mut v.iter().map(|&j| Whole::long(j))),
            Some(Items::Int(v)) => wholes(&mut v.iter().map(|&j| Whole::int(j))),
            Some(Items::Short(v)) => wholes(&mut v.iter().map(|&j| Whole::short(j))),
            Some(Items::Other(0)) => Ok(vec![]),
            // q makes a table of a list of dictionaries with the same keys: a dictionary's values,
            // a table's column.
            None if self.qtype() == t::TABLE => self.rows(path),
            None => match self.dict() {
                Some((keys, _)) if keys.qtype() == t::TABLE => Err(keyed_table(&path(0), keys)),
                _ => Err(format!("{}: unsupported {}", path(0), self.type_name().noun())),
            },
            _ => match self.vector_f64() {
                Some(v) => v.iter().enumerate().map(|(i, &f)| number(f, || path(i))).collect(),
                // Every item has the vector's type: the first one is named.
                None => Err(format!("{}: unsupported {}", path(0), TypeName(-self.qtype()).noun())),
            },
        }
    }
}

/// The error for a keyed table (a dictionary from a table of keys to a table of values), which
/// the configuration has no use for: it names the value's path and the key columns.
#[cold]
fn keyed_table(what: &str, keys: KRef<'_>) -> Bad {
    let cols = keys.table().and_then(|(names, _)| names.texts("").ok()).map(|n| n.join(", ")).unwrap_or_default();
    format!("{what} must be a dictionary or a table, not a keyed table (keyed on {cols}): unkey it with 0!")
}

/// A dictionary's key and value.
pub type Entry<'a> = (Cow<'a, str>, Item<'a>);

/// One value of a dictionary, whatever the layout of the dictionary's value list.
#[derive(Clone, Copy)]
pub enum Item<'a> {
    /// An item of a general list of values.
    Obj(KRef<'a>),
    /// An item of a numeric or timespan vector of values: its value (as [`KRef::atom_f64`] reads
    /// it) and the vector's type code.
    Num(f64, i8),
    /// An item of any other typed vector (its type code).
    Other(i8),
}

impl Item<'_> {
    /// A numeric or timespan value and its atom type code (negative); None for anything else.
    pub fn number(&self) -> Option<(f64, i8)> {
        match *self {
            Item::Num(f, t) => Some((f, -t)),
            Item::Obj(x) => x.atom_f64().map(|f| (f, x.qtype())),
            Item::Other(_) => None,
        }
    }

    /// The item's q type, for error texts.
    pub fn type_name(&self) -> TypeName {
        match *self {
            Item::Obj(x) => x.type_name(),
            Item::Num(_, t) | Item::Other(t) => TypeName(-t),
        }
    }
}

/// An interned symbol read from a symbol atom or vector (the only ways to get one).
#[derive(Clone, Copy)]
#[repr(transparent)]
struct Sym<'a>(S, PhantomData<&'a u8>);

impl<'a> Sym<'a> {
    fn str(self, what: impl Display) -> Result<&'a str, Bad> {
        // SAFETY: read from a symbol atom or vector: q symbols are NUL-terminated, interned and
        // never freed.
        let c = unsafe { CStr::from_ptr(self.0) };
        c.to_str().map_err(|_| format!("{what} is not UTF-8"))
    }
}

/// A short, int or long widened to i64, with its type's null and (positive) infinity: the one
/// reading of q's whole-number nulls (`0Nh` `0Ni` `0N`) and infinities (`±0Wh` `±0Wi` `±0W`), in
/// atoms and in vectors alike.
#[derive(Clone, Copy)]
struct Whole {
    v: i64,
    null: i64,
    inf: i64,
}

/// Why a [`Whole`] is not a number: the end of "must not be …".
enum NotNumber {
    Null,
    Infinite,
}

impl Display for NotNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotNumber::Null => "null",
            NotNumber::Infinite => "infinite",
        })
    }
}

impl Whole {
    #[inline]
    fn short(h: i16) -> Self {
        Whole { v: h.into(), null: i16::MIN.into(), inf: i16::MAX.into() }
    }

    #[inline]
    fn int(i: i32) -> Self {
        Whole { v: i.into(), null: i32::MIN.into(), inf: i32::MAX.into() }
    }

    #[inline]
    fn long(j: i64) -> Self {
        Whole { v: j, null: i64::MIN, inf: i64::MAX }
    }

    /// NaN for the null, ±inf for the infinities, else the value.
    #[inline]
    fn f64(self) -> f64 {
        match self.v {
            v if v == self.null => f64::NAN,
            v if v == self.inf => f64::INFINITY,
            v if v == -self.inf => f64::NEG_INFINITY,
            v => v as f64,
        }
    }

    /// The value, or why it is none.
    #[inline]
    fn get(self) -> Result<i64, NotNumber> {
        match self.v {
            v if v == self.null => Err(NotNumber::Null),
            v if v == self.inf || v == -self.inf => Err(NotNumber::Infinite),
            v => Ok(v),
        }
    }

    /// As JSON: the null is JSON null ("not given"), an infinity is refused (as for floats).
    fn json<W: Display>(self, what: impl FnOnce() -> W) -> Result<Value, Bad> {
        match self.get() {
            Ok(v) => Ok(Value::from(v)),
            Err(NotNumber::Null) => Ok(Value::Null),
            Err(not) => Err(must_not(what(), not)),
        }
    }
}

/// A float as JSON: a q null means "not given" (JSON null, the default for a config key); an
/// infinity has no JSON form and is refused.
fn number<W: Display>(f: f64, what: impl FnOnce() -> W) -> Result<Value, Bad> {
    if f.is_nan() {
        return Ok(Value::Null);
    }
    Number::from_f64(f).map(Value::Number).ok_or_else(|| must_not(what(), NotNumber::Infinite))
}

/// A q type code, named for error texts: `Display` writes it with its article ("a long atom",
/// "an int vector", "::"), [`TypeName::noun`] without.
#[derive(Clone, Copy)]
pub struct TypeName(i8);

impl TypeName {
    /// "long atom", "int vector", "general list", "projection", ...
    pub fn noun(self) -> Cow<'static, str> {
        let ty = self.0;
        let n = match ty.unsigned_abs() {
            0 => "general list",
            1 => "boolean",
            2 => "guid",
            4 => "byte",
            5 => "short",
            6 => "int",
            7 => "long",
            8 => "real",
            9 => "float",
            10 => "char",
            11 => "symbol",
            12 => "timestamp",
            13 => "month",
            14 => "date",
            15 => "datetime",
            16 => "timespan",
            17 => "minute",
            18 => "second",
            19 => "time",
            20..=76 => "enumerated symbol",
            98 => "table",
            99 => "dictionary",
            100 => "lambda",
            101 => "::",
            102 => "operator",
            103 => "iterator",
            104 => "projection",
            105 => "composition",
            106..=111 => "derived function",
            112 => "dynamic-load function",
            128 => "error",
            _ => return Owned(format!("q type {ty}")),
        };
        match ty {
            v if v < 0 && v != -128 => Owned(format!("{n} atom")),
            0 | 98.. | -128 => Borrowed(n),
            _ => Owned(format!("{n} vector")),
        }
    }
}

impl Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.noun();
        match n.as_bytes()[0] {
            b':' => f.write_str(&n),
            b'a' | b'e' | b'i' | b'o' | b'u' => write!(f, "an {n}"),
            _ => write!(f, "a {n}"),
        }
    }
}
