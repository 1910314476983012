//! HTTP/1.1 messages as the tests' loopback servers read them (the fault proxy and the scripted
//! mock): a request line or status line, headers, and a body framed by Content-Length or chunked.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

pub const MAX_HEAD: usize = 1 << 20;

pub struct Request {
    pub method: String,
    pub path: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Had Content-Length or Transfer-Encoding: the forwarded request carries Content-Length.
    pub framed: bool,
}

impl Request {
    pub fn wants_close(&self) -> bool {
        let conn = header(&self.headers, "connection").unwrap_or("").to_ascii_lowercase();
        let tokens: Vec<&str> = conn.split(',').map(str::trim).collect();
        tokens.contains(&"close") || (self.version == "HTTP/1.0" && !tokens.contains(&"keep-alive"))
    }
}

/// Header (name, value) pairs in the order received, names as sent.
pub type Headers = Vec<(String, String)>;

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

pub fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// One line without its CRLF; EOF is an error.
pub fn line(r: &mut impl BufRead) -> io::Result<String> {
    let mut s = String::new();
    if r.read_line(&mut s)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    while s.ends_with('\n') || s.ends_with('\r') {
        s.pop();
    }
    Ok(s)
}

/// Start line and headers; None on a clean EOF before the message.
pub fn read_head(r: &mut impl BufRead) -> io::Result<Option<(String, Headers)>> {
    let mut start = String::new();
    // Skip empty lines before the start line (RFC 9112 §2.2).
    while start.is_empty() {
        let mut s = String::new();
        if r.read_line(&mut s)? == 0 {
            return Ok(None);
        }
        start = s.trim_end_matches(['\r', '\n']).to_string();
    }
    let mut headers = Vec::new();
    let mut size = start.len();
    loop {
        let h = line(r)?;
        if h.is_empty() {
            return Ok(Some((start, headers)));
        }
        size += h.len();
        if size > MAX_HEAD {
            return Err(bad("header section too large"));
        }
        let (k, v) = h.split_once(':').ok_or_else(|| bad(format!("bad header line {h:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
}

pub fn is_chunked(headers: &[(String, String)]) -> bool {
    header(headers, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

pub fn content_length(headers: &[(String, String)]) -> io::Result<Option<usize>> {
    header(headers, "content-length").map(|v| v.parse().map_err(|_| bad(format!("bad Content-Length {v:?}")))).transpose()
}

pub fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let l = line(r)?;
        let size = l.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(size, 16).map_err(|_| bad(format!("bad chunk size {l:?}")))?;
        if n == 0 {
            // Trailers, up to the empty line.
            while !line(r)?.is_empty() {}
            return Ok(out);
        }
        let at = out.len();
        out.resize(at + n, 0);
        r.read_exact(&mut out[at..])?;
        if !line(r)?.is_empty() {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
}

pub fn read_request(r: &mut BufReader<TcpStream>, w: &mut &TcpStream) -> io::Result<Option<Request>> {
    let Some((start, headers)) = read_head(r)? else { return Ok(None) };
    let mut parts = start.split_whitespace();
    let (Some(method), Some(path), version) = (parts.next(), parts.next(), parts.next().unwrap_or("HTTP/1.0")) else {
        return Err(bad(format!("bad request line {start:?}")));
    };
    if header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let (body, framed) = if is_chunked(&headers) {
        (read_chunked(r)?, true)
    } else if let Some(n) = content_length(&headers)? {
        let mut b = vec![0; n];
        r.read_exact(&mut b)?;
        (b, true)
    } else {
        (Vec::new(), false)
    };
    Ok(Some(Request { method: method.into(), path: path.into(), version: version.into(), headers, body, framed }))
}
