//! Float spelling shared by every encoder: Go's `%g` shortest form, as Prometheus canonicalises it.
//!
//! Prometheus 3 rewrites `le` and `quantile` on ingestion to this form, and remote write carries
//! label strings verbatim, so bounds must be spelt exactly this way for our series to match the
//! ones Prometheus scrapes. Values use the same spelling (integers stay integers for readability).

use std::fmt::Write;

/// Writes `v` as Prometheus' canonical label form: `1.0`, `0.5`, `1e-05`, `100000.0`, `1e+06`, `+Inf`.
///
/// ```
/// let mut s = String::new();
/// for v in [1.0, 0.5, 1e-5, 1e5, 1e6, 0.00025, f64::INFINITY] {
///     kdbprom::encode::float::write_canonical(&mut s, v);
///     s.push(' ');
/// }
/// assert_eq!(s, "1.0 0.5 1e-05 100000.0 1e+06 0.00025 +Inf ");
/// ```
pub fn write_canonical(out: &mut String, v: f64) {
    if !special(out, v) {
        write_g(out, v, true);
    }
}

/// Writes a sample value: integers below 2^53 as integers, everything else as Go `%g` shortest.
///
/// ```
/// let mut s = String::new();
/// for v in [3.0, -2.0, 0.1, 1.5e300, f64::NAN, f64::NEG_INFINITY] {
///     kdbprom::encode::float::write_value(&mut s, v);
///     s.push(' ');
/// }
/// assert_eq!(s, "3 -2 0.1 1.5e+300 NaN -Inf ");
/// ```
pub fn write_value(out: &mut String, v: f64) {
    if special(out, v) {
        return;
    }
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        write_int(out, v as i64);
    } else {
        write_g(out, v, false);
    }
}

/// Integers without the `fmt` machinery: most samples are counts.
fn write_int(out: &mut String, mut n: i64) {
    if n < 0 {
        out.push('-');
        n = -n;
    }
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).expect("ASCII digits"));
}

fn special(out: &mut String, v: f64) -> bool {
    let s = if v.is_nan() {
        "NaN"
    } else if v == f64::INFINITY {
        "+Inf"
    } else if v == f64::NEG_INFINITY {
        "-Inf"
    } else {
        return false;
    };
    out.push_str(s);
    true
}

fn write_g(out: &mut String, v: f64, point_zero: bool) {
    // strconv.FormatFloat(v, 'g', -1, 64): with shortest digits Go decides on precision 6, i.e.
    // exponent form when the decimal exponent is < -4 or >= 6, with at least two exponent digits.
    // The shortest digits come from `{:e}` into a buffer on the stack (no allocation per value).
    let mut e = Stack::default();
    let _ = write!(e, "{v:e}");
    let e = e.as_str();
    let (mant, exp) = e.split_once('e').unwrap_or((e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let _ = write!(out, "{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else {
        let start = out.len();
        let _ = write!(out, "{v}");
        if point_zero && !out[start..].contains('.') {
            out.push_str(".0");
        }
    }
}

/// A `fmt::Write` into 32 bytes on the stack: `{:e}` of an f64 is at most 24 (`-2.2250738585072014e-308`).
#[derive(Default)]
struct Stack {
    buf: [u8; 32],
    len: usize,
}

impl Stack {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are copied in, so the bytes are UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Write for Stack {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(v: f64) -> String {
        let mut s = String::new();
        write_canonical(&mut s, v);
        s
    }

    #[test]
    fn matches_go_g_shortest() {
        // Expected strings are what Go's strconv.FormatFloat(v, 'g', -1, 64) prints, plus ".0".
        let table = [
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123456.0, "123456.0"),
            (1234567.0, "1.234567e+06"),
            (0.1, "0.1"),
            (2.5, "2.5"),
            (10.0, "10.0"),
            (-0.5, "-0.5"),
            (1.5e-7, "1.5e-07"),
            (0.0, "0.0"),
            (1e21, "1e+21"),
            (123456789.0, "1.23456789e+08"),
        ];
        for (v, want) in table {
            assert_eq!(canon(v), want, "{v}");
        }
    }
}
