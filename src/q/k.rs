//! Reading q objects into Rust values and building q results: the only code that dereferences K.
//!
//! Arguments are borrowed from q (never freed here); results are fresh objects with refcount 0
//! that q takes over. Every reader checks the type byte before it reads the matching union field.

use kdbplus::api::native::{ka, kf, kj, kpn, ktn, ss, xD};
use kdbplus::api::{K, S};
use serde_json::{Map, Number, Value};
use std::ffi::{CStr, CString, c_char};

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

/// The q type of `x`.
pub fn qtype(x: K) -> i8 {
    // SAFETY: q passes valid K objects to every export; the header is always readable.
    unsafe { (*x).qtype }
}

fn len(x: K) -> usize {
    // SAFETY: only called on list types (qtype >= 0), whose union holds `list.n`.
    unsafe { (*x).value.list.n as usize }
}

/// The items of a list of type `T` (caller checked the type code matches `T`).
fn items<'a, T>(x: K) -> &'a [T] {
    // SAFETY: the caller checked qtype, so G0 holds `n` contiguous items of T, alive while q holds x
    // (for the duration of the export call, which bounds every use of the slice).
    unsafe { std::slice::from_raw_parts((*x).value.list.G0.as_ptr().cast::<T>(), len(x)) }
}

fn sym_str<'a>(s: S) -> Result<&'a str, Bad> {
    // SAFETY: q symbols are NUL-terminated, interned and never freed.
    let c = unsafe { CStr::from_ptr(s) };
    c.to_str().map_err(|_| "symbol is not UTF-8".to_string())
}

/// Name of a q type for error texts.
pub fn type_name(x: K) -> String {
    name_of(qtype(x))
}

/// Name of the q type with code `ty` for error texts.
fn name_of(ty: i8) -> String {
    let n = match ty.unsigned_abs() as i8 {
        0 => "general list",
        1 => "boolean",
        4 => "byte",
        5 => "short",
        6 => "int",
        7 => "long",
        8 => "real",
        9 => "float",
        10 => "char",
        11 => "symbol",
        12 => "timestamp",
        14 => "date",
        16 => "timespan",
        98 => "table",
        99 => "dictionary",
        101 => "::",
        _ => return format!("q type {ty}"),
    };
    match ty {
        v if v < 0 => format!("{n} atom"),
        0 | 98.. => n.to_string(),
        _ => format!("{n} vector"),
    }
}

/// `x` is `::` (or a projection hole).
pub fn is_identity(x: K) -> bool {
    qtype(x) == t::IDENTITY
}

/// A non-null symbol atom.
pub fn symbol<'a>(x: K, what: &str) -> Result<&'a str, Bad> {
    if qtype(x) != -t::SYMBOL {
        return Err(format!("{what} must be a symbol, not a {}", type_name(x)));
    }
    // SAFETY: type -11 holds a symbol pointer.
    let s = sym_str(unsafe { (*x).value.symbol })?;
    if s.is_empty() {
        return Err(format!("{what} must not be the null symbol"));
    }
    Ok(s)
}

/// A symbol, a string or a char.
pub fn text(x: K, what: &str) -> Result<String, Bad> {
    match qtype(x) {
        // SAFETY: type -11 holds a symbol pointer.
        v if v == -t::SYMBOL => sym_str(unsafe { (*x).value.symbol }).map(str::to_owned),
        t::CHAR => String::from_utf8(items::<u8>(x).to_vec()).map_err(|_| format!("{what} is not UTF-8")),
        // SAFETY: type -10 holds the char in `byte`.
        v if v == -t::CHAR => Ok(char::from(unsafe { (*x).value.byte }).to_string()),
        _ => Err(format!("{what} must be a symbol or a string, not a {}", type_name(x))),
    }
}

/// Several texts: a symbol vector, a list of strings/symbols, `()`, or one symbol or string.
pub fn texts(x: K, what: &str) -> Result<Vec<String>, Bad> {
    match qtype(x) {
        t::SYMBOL => items::<S>(x).iter().map(|&s| sym_str(s).map(str::to_owned)).collect(),
        t::LIST => items::<K>(x).iter().map(|&e| text(e, what)).collect(),
        v if v == -t::SYMBOL || v == t::CHAR || v == -t::CHAR => Ok(vec![text(x, what)?]),
        t::IDENTITY => Ok(vec![]),
        _ => Err(format!("{what} must be symbols or strings, not a {}", type_name(x))),
    }
}

/// A numeric or timespan atom as f64: nulls become NaN, infinities ±inf, timespans seconds.
/// Returns None for a non-numeric type. Never allocates.
#[inline]
pub fn atom_f64(x: K) -> Option<f64> {
    // SAFETY: each arm reads the union field that matches the checked type code.
    unsafe {
        let v = &(*x).value;
        // checked: type -128 (an error object) has no positive twin in i8.
        Some(match qtype(x).checked_neg()? {
            t::FLOAT => v.float,
            t::LONG => long_f64(v.long),
            t::INT => int_f64(v.int),
            t::REAL => f64::from(v.real),
            t::SHORT => match v.short {
                i16::MIN => f64::NAN,
                i16::MAX => f64::INFINITY,
                -32767 => f64::NEG_INFINITY,
                s => f64::from(s),
            },
            t::TIMESPAN => long_f64(v.long) * 1e-9,
            _ => return None,
        })
    }
}

#[inline]
fn long_f64(j: i64) -> f64 {
    match j {
        i64::MIN => f64::NAN,
        i64::MAX => f64::INFINITY,
        -9_223_372_036_854_775_807 => f64::NEG_INFINITY,
        j => j as f64,
    }
}

#[inline]
fn int_f64(i: i32) -> f64 {
    match i {
        i32::MIN => f64::NAN,
        i32::MAX => f64::INFINITY,
        -2_147_483_647 => f64::NEG_INFINITY,
        i => f64::from(i),
    }
}

/// A numeric vector's values: borrowed for floats, converted otherwise. None if not numeric.
pub fn vector_f64<'a>(x: K) -> Option<std::borrow::Cow<'a, [f64]>> {
    use std::borrow::Cow::{Borrowed, Owned};
    Some(match qtype(x) {
        t::FLOAT => Borrowed(items::<f64>(x)),
        t::LONG => Owned(items::<i64>(x).iter().map(|&j| long_f64(j)).collect()),
        t::INT => Owned(items::<i32>(x).iter().map(|&i| int_f64(i)).collect()),
        t::REAL => Owned(items::<f32>(x).iter().map(|&e| f64::from(e)).collect()),
        t::SHORT => Owned(items::<i16>(x).iter().map(|&h| if h == i16::MIN { f64::NAN } else { f64::from(h) }).collect()),
        t::TIMESPAN => Owned(items::<i64>(x).iter().map(|&j| long_f64(j) * 1e-9).collect()),
        // A general list of numeric atoms (a "mixed list") is accepted if every item is one.
        t::LIST => Owned(items::<K>(x).iter().map(|&e| atom_f64(e)).collect::<Option<Vec<_>>>()?),
        _ => return None,
    })
}

/// One value of a dictionary, whatever the layout of the dictionary's value list.
#[derive(Clone, Copy)]
pub enum Item {
    /// An item of a general list of values.
    Obj(K),
    /// An item of a numeric or timespan vector of values: its value (as [`atom_f64`] reads it)
    /// and the vector's type code.
    Num(f64, i8),
    /// An item of any other typed vector (its type code).
    Other(i8),
}

impl Item {
    /// A numeric or timespan value and its atom type code (negative); None for anything else.
    pub fn number(&self) -> Option<(f64, i8)> {
        match *self {
            Item::Num(f, t) => Some((f, -t)),
            Item::Obj(x) => atom_f64(x).map(|f| (f, qtype(x))),
            _ => None,
        }
    }

    /// The item's q type, for error texts.
    pub fn type_name(&self) -> String {
        match *self {
            Item::Obj(x) => type_name(x),
            Item::Num(_, t) | Item::Other(t) => name_of(-t),
        }
    }
}

/// The (key, value) pairs of a dictionary with symbol (or string) keys; None if `x` is not a
/// dictionary.
pub fn dict_items(x: K, what: &str) -> Result<Option<Vec<(String, Item)>>, Bad> {
    if qtype(x) != t::DICT {
        return Ok(None);
    }
    // A dictionary has the layout of a 2-item general list: keys, then values.
    let kv = items::<K>(x);
    let (keys, vals) = (kv[0], kv[1]);
    let names = if qtype(keys) == t::LIST && len(keys) == 0 { vec![] } else { texts(keys, what)? };
    if names.is_empty() {
        return Ok(Some(vec![]));
    }
    let ty = qtype(vals);
    if !(0..=19).contains(&ty) {
        return Err(format!("{what}: the dictionary's values must be a list, not a {}", type_name(vals)));
    }
    let values: Vec<Item> = match ty {
        t::LIST => items::<K>(vals).iter().map(|&e| Item::Obj(e)).collect(),
        _ => match vector_f64(vals) {
            Some(v) => v.iter().map(|&f| Item::Num(f, ty)).collect(),
            None => (0..len(vals)).map(|_| Item::Other(ty)).collect(),
        },
    };
    Ok(Some(names.into_iter().zip(values).collect()))
}

/// A long or int atom that is not null.
pub fn long(x: K, what: &str) -> Result<i64, Bad> {
    // SAFETY: each arm reads the union field that matches the checked type code.
    let j = unsafe {
        match qtype(x).checked_neg().unwrap_or(0) {
            t::LONG => (*x).value.long,
            t::INT if (*x).value.int != i32::MIN => i64::from((*x).value.int),
            t::INT => i64::MIN,
            t::SHORT if (*x).value.short != i16::MIN => i64::from((*x).value.short),
            _ => return Err(format!("{what} must be a long, not a {}", type_name(x))),
        }
    };
    if j == i64::MIN {
        return Err(format!("{what} must not be null"));
    }
    Ok(j)
}

/// A boolean atom.
pub fn boolean(x: K, what: &str) -> Result<bool, Bad> {
    if qtype(x) != -t::BOOL {
        return Err(format!("{what} must be a boolean, not a {}", type_name(x)));
    }
    // SAFETY: type -1 holds the boolean in `byte`.
    Ok(unsafe { (*x).value.byte } != 0)
}

/// A q value as JSON, for the configuration and the process dictionary.
///
/// `what` names the value in error texts; it grows with the path into dictionaries and lists
/// (`config.remote_write[0].headers.X`), so a nested error names its key.
pub fn json(x: K, what: &str) -> Result<Value, Bad> {
    let ty = qtype(x);
    Ok(match ty {
        t::IDENTITY => Value::Null,
        // SAFETY: type -1 holds the boolean in `byte`.
        v if v == -t::BOOL => Value::Bool(unsafe { (*x).value.byte } != 0),
        v if v == -t::LONG || v == -t::INT || v == -t::SHORT => whole(x, what)?,
        v if v == -t::FLOAT || v == -t::REAL || v == -t::TIMESPAN => number(atom_f64(x).unwrap_or(f64::NAN), what)?,
        v if v == -t::SYMBOL || v == t::CHAR || v == -t::CHAR => Value::String(text(x, what)?),
        t::DICT => {
            // A dictionary has the layout of a 2-item general list: keys, then values.
            let kv = items::<K>(x);
            let (keys, vals) = (kv[0], kv[1]);
            let names = if qtype(keys) == t::LIST && len(keys) == 0 { vec![] } else { texts(keys, what)? };
            let vals = if names.is_empty() { vec![] } else { list(vals, |i| format!("{what}.{}", names[i]))? };
            Value::Object(names.into_iter().zip(vals).collect::<Map<_, _>>())
        }
        t::TABLE => {
            // A table (what `enlist` makes of a dictionary in q) is a list of rows, as JSON has it.
            // SAFETY: type 98 holds its column dictionary in `table`.
            let kv = items::<K>(unsafe { (*x).value.table });
            let names = texts(kv[0], what)?;
            let cols = items::<K>(kv[1])
                .iter()
                .zip(&names)
                .map(|(&c, n)| list(c, |i| format!("{what}[{i}].{n}")))
                .collect::<Result<Vec<_>, _>>()?;
            let rows = cols.first().map_or(0, Vec::len);
            Value::Array(
                (0..rows)
                    .map(|i| {
                        Value::Object(names.iter().zip(&cols).map(|(n, c)| (n.clone(), c.get(i).cloned().unwrap_or(Value::Null))).collect())
                    })
                    .collect(),
            )
        }
        // Lists and the typed vectors (chars are strings, handled above).
        0..=19 => Value::Array(list(x, |i| format!("{what}[{i}]"))?),
        _ => return Err(format!("{what}: unsupported {}", type_name(x))),
    })
}

/// The items of a list (general or typed: the caller checked `x` is one) as JSON; `path(i)` names
/// item `i` in error texts.
fn list(x: K, path: impl Fn(usize) -> String) -> Result<Vec<Value>, Bad> {
    match qtype(x) {
        t::LIST => items::<K>(x).iter().enumerate().map(|(i, &e)| json(e, &path(i))).collect(),
        t::SYMBOL => items::<S>(x).iter().map(|&s| sym_str(s).map(|s| Value::String(s.to_owned()))).collect(),
        t::BOOL => Ok(items::<u8>(x).iter().map(|&b| Value::Bool(b != 0)).collect()),
        // A dictionary's values may be a char vector (`` `a`b!"xy" ``): one char per key.
        t::CHAR => Ok(items::<u8>(x).iter().map(|&c| Value::String(char::from(c).to_string())).collect()),
        _ => match vector_f64(x) {
            Some(v) => v.iter().enumerate().map(|(i, &f)| number(f, &path(i))).collect(),
            None if len(x) == 0 => Ok(vec![]),
            // Every item has the vector's type: the first one is named.
            None => Err(format!("{}: unsupported {}", path(0), type_name(x).replace(" vector", " atom"))),
        },
    }
}

/// A float as JSON: a q null means "not given" (JSON null, the default for a config key); an
/// infinity has no JSON form and is refused.
fn number(f: f64, what: &str) -> Result<Value, Bad> {
    if f.is_nan() {
        return Ok(Value::Null);
    }
    Number::from_f64(f).map(Value::Number).ok_or_else(|| format!("{what} must not be infinite"))
}

/// A short, int or long atom as JSON: null as JSON null, an infinity refused (as for floats).
fn whole(x: K, what: &str) -> Result<Value, Bad> {
    // SAFETY: each arm reads the union field that matches the checked type code.
    let (j, null, inf) = unsafe {
        match qtype(x).checked_neg().unwrap_or(0) {
            t::LONG => ((*x).value.long, i64::MIN, i64::MAX),
            t::INT => (i64::from((*x).value.int), i64::from(i32::MIN), i64::from(i32::MAX)),
            t::SHORT => (i64::from((*x).value.short), i64::from(i16::MIN), i64::from(i16::MAX)),
            _ => return Err(format!("{what} must be a whole number, not a {}", type_name(x))),
        }
    };
    match j {
        j if j == null => Ok(Value::Null),
        j if j == inf || j == -inf => Err(format!("{what} must not be infinite")),
        j => Ok(Value::from(j)),
    }
}

/// A long atom.
pub fn new_long(j: i64) -> K {
    // SAFETY: kj only allocates.
    unsafe { kj(j) }
}

/// A float atom.
pub fn new_float(f: f64) -> K {
    // SAFETY: kf only allocates.
    unsafe { kf(f) }
}

/// A string (char vector).
pub fn new_string(s: &str) -> K {
    // SAFETY: kpn copies `len` bytes from the pointer, which is valid for that many.
    unsafe { kpn(s.as_ptr() as *mut c_char, s.len() as i64) }
}

/// An interned symbol pointer (interior NULs cut the text short).
fn intern(s: &str) -> S {
    let c = CString::new(s.split('\0').next().unwrap_or("")).unwrap_or_default();
    // SAFETY: ss copies the NUL-terminated text into q's symbol table and returns the interned pointer.
    unsafe { ss(c.as_ptr() as *mut c_char) }
}

/// A symbol atom.
pub fn new_symbol(s: &str) -> K {
    // SAFETY: ka allocates a symbol atom; its `symbol` field takes an interned pointer.
    unsafe {
        let k = ka(-i32::from(t::SYMBOL));
        (*k).value.symbol = intern(s);
        k
    }
}

/// A symbol vector.
pub fn new_symbols(names: &[&str]) -> K {
    // SAFETY: ktn allocates n symbol slots, each filled before the list is handed out.
    unsafe {
        let k = ktn(i32::from(t::SYMBOL), names.len() as i64);
        let slots = std::slice::from_raw_parts_mut((*k).value.list.G0.as_mut_ptr().cast::<S>(), names.len());
        for (slot, n) in slots.iter_mut().zip(names) {
            *slot = intern(n);
        }
        k
    }
}

/// A general list of the given objects (ownership passes to the list).
fn new_list(objs: Vec<K>) -> K {
    // SAFETY: ktn allocates n K slots, each filled before the list is handed out.
    unsafe {
        let k = ktn(i32::from(t::LIST), objs.len() as i64);
        let slots = std::slice::from_raw_parts_mut((*k).value.list.G0.as_mut_ptr().cast::<K>(), objs.len());
        slots.copy_from_slice(&objs);
        k
    }
}

/// A dictionary from symbol keys to q objects (ownership passes to the dictionary).
pub fn new_dict(pairs: Vec<(&str, K)>) -> K {
    let names: Vec<&str> = pairs.iter().map(|(n, _)| *n).collect();
    let vals: Vec<K> = pairs.into_iter().map(|(_, v)| v).collect();
    // SAFETY: xD takes ownership of both lists.
    unsafe { xD(new_symbols(&names), new_list(vals)) }
}
