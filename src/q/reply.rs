//! Building the results q takes over: fresh objects with refcount 0 (with [`super::k`], the only
//! code that dereferences K).

use super::k::t;
use kdbplus::api::native::{ka, kf, kj, kpn, ktn, ss, xD};
use kdbplus::api::{K, S};
use std::ffi::{CString, c_char};

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
    // SAFETY: kpn copies `len` bytes from the pointer, which is valid for that many (and never
    // writes through it).
    unsafe { kpn(s.as_ptr() as *mut c_char, s.len() as i64) }
}

/// An interned symbol pointer (interior NULs cut the text short).
fn intern(s: &str) -> S {
    let c = CString::new(s.split('\0').next().unwrap_or("")).unwrap_or_default();
    // SAFETY: ss copies the NUL-terminated text into q's symbol table and returns the interned
    // pointer (and never writes through the argument).
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

/// A fresh list of `n` items of type `T` (q type `ty`), each set by `fill` before it is handed out.
///
/// # Safety
/// `T` is the item type of q type `ty`.
unsafe fn new_vector<T>(ty: i8, n: usize, fill: impl FnOnce(&mut [T])) -> K {
    // SAFETY: ktn allocates `n` items of the type's width after the header; they are reached
    // through the raw pointer (no reference to the one-byte G0), so the slice spans all of them,
    // and the fresh list is ours alone until it is returned.
    unsafe {
        let k = ktn(i32::from(ty), n as i64);
        let list = &raw mut (*k).value.list;
        fill(std::slice::from_raw_parts_mut((&raw mut (*list).G0).cast::<T>(), n));
        k
    }
}

/// A symbol vector.
pub fn new_symbols(names: &[&str]) -> K {
    // SAFETY: a symbol vector's items are interned symbol pointers.
    unsafe { new_vector::<S>(t::SYMBOL, names.len(), |slots| slots.iter_mut().zip(names).for_each(|(s, n)| *s = intern(n))) }
}

/// A general list of the given objects (ownership passes to the list).
fn new_list(objs: Vec<K>) -> K {
    // SAFETY: a general list's items are K objects.
    unsafe { new_vector::<K>(t::LIST, objs.len(), |slots| slots.copy_from_slice(&objs)) }
}

/// A dictionary from symbol keys to q objects (ownership passes to the dictionary).
pub fn new_dict(pairs: Vec<(&str, K)>) -> K {
    let names: Vec<&str> = pairs.iter().map(|(n, _)| *n).collect();
    let vals: Vec<K> = pairs.into_iter().map(|(_, v)| v).collect();
    // SAFETY: xD takes ownership of both lists.
    unsafe { xD(new_symbols(&names), new_list(vals)) }
}
