//! Protobuf wire pieces the remote-write encoders write by hand: varints, zigzag, length-delimited strings.

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

/// Appends a length-delimited field `tag` whose bytes are `parts` concatenated (no copy to join them).
pub(super) fn put_string(buf: &mut Vec<u8>, tag: u32, parts: &[&str]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    for p in parts {
        buf.extend_from_slice(p.as_bytes());
    }
}

/// Bytes of a length-delimited field of `len` bytes whose key takes `tag_len` bytes.
pub(super) fn string_len(tag_len: usize, len: usize) -> usize {
    tag_len + encoded_len_varint(len as u64) + len
}

/// Protobuf `sint32` zigzag encoding.
pub(super) fn zigzag32(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

/// Protobuf `sint64` zigzag encoding.
pub(super) fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Appends `v` as a protobuf varint.
#[inline(always)]
pub(super) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Bytes of `v` as a varint.
#[inline(always)]
pub(super) fn varint_len(v: u64) -> usize {
    // Most lengths the encoders write (label values, messages of a few labels) are one byte.
    if v < 0x80 { 1 } else { (64 - v.leading_zeros() as usize).div_ceil(7) }
}

/// Starts a length-delimited field's bytes in `buf` before their length is known: one byte is
/// kept for the length, which [`end_len`] writes (moving the bytes if it takes more).
#[inline(always)]
pub(super) fn begin_len(buf: &mut Vec<u8>) -> usize {
    buf.push(0);
    buf.len()
}

/// Writes the length of the bytes written since [`begin_len`] returned `start`.
#[inline(always)]
pub(super) fn end_len(buf: &mut Vec<u8>, start: usize) {
    let len = buf.len() - start;
    if len < 0x80 {
        buf[start - 1] = len as u8;
    } else {
        let mut head = Vec::with_capacity(10);
        put_varint(&mut head, len as u64);
        buf.splice(start - 1..start, head);
    }
}
