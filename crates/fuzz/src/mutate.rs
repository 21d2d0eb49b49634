//! Structure-aware mutations of JSON bodies, and the hostile values they insert.
//!
//! A body is parsed, changed at one to four random places (keys dropped, renamed, duplicated;
//! values retyped, replaced by hostile strings, numbers, dates or deep nesting), written back,
//! and sometimes broken at the byte level (invalid UTF-8, truncation). Values a
//! `serde_json::Value` cannot hold (30-digit numbers, duplicate keys, nesting past serde's
//! limit) go in as markers that are replaced in the written text.

use serde_json::{Map, Value};

use crate::rng::Rng;

/// Look-alikes of Latin identifiers: fullwidth forms, Cyrillic and Greek letters, ligatures,
/// mathematical letters, combining marks.
pub const LOOKALIKES: &[&str] = &[
    "ｄａｖｅ",
    "dаve",
    "јdoe",
    "ԁave",
    "ΑΒΕ",
    "ﬁnance",
    "𝐝𝐚𝐯𝐞",
    "１０４２",
    "٤٢",
    "dave\u{0301}",
    "İstanbul",
    "ß",
    "ǅ",
    "Å",
    "K",
    "ＪＡＮＥ.ＤＯＥ＠ＥＸＡＭＰＬＥ.ＣＯＭ",
    "jane.doe@еxample.com",
];

/// Control, bidi and invisible characters.
pub const CONTROLS: &[&str] = &[
    "\u{0}",
    "\u{7}",
    "\u{8}",
    "\t",
    "\n",
    "\r\n",
    "\u{b}",
    "\u{c}",
    "\u{1b}",
    "\u{7f}",
    "\u{85}",
    "\u{a0}",
    "\u{200b}",
    "\u{200c}",
    "\u{200d}",
    "\u{200e}",
    "\u{200f}",
    "\u{202a}",
    "\u{202e}",
    "\u{2066}",
    "\u{2069}",
    "\u{2028}",
    "\u{2029}",
    "\u{3000}",
    "\u{feff}",
    "\u{fffd}",
    "\u{e000}",
    "\u{10ffff}",
    "\u{1f600}",
    "\u{2003}",
];

/// Injection strings for LDAP filters and DNs, SCIM filters, URL paths and logs.
pub const INJECTIONS: &[&str] = &[
    "*",
    "*)(uid=*",
    "admin)(|(uid=*",
    "*)(|(objectClass=*))",
    "\\2a",
    "\\",
    "\\00",
    "uid=admin,dc=example,dc=org",
    "a,ou=admins",
    "a+cn=x",
    "#foo",
    " leading",
    "trailing ",
    "\"quoted\"",
    "\" or 1 eq 1",
    "x\" or userName pr or \"",
    "userName eq \"admin\"",
    "../x",
    "..",
    ".",
    "..%2Fx",
    "%2e%2e%2f",
    "a/b",
    "a?b#c",
    "%00",
    "%zz",
    "%",
    "a%2Fb",
    "%C0%AF",
    "x\r\nSet-Cookie: a=b",
    "${jndi:ldap://x}",
    "'; drop table jobs; --",
    "<script>alert(1)</script>",
    "null",
    "true",
    "0",
    "-1",
    "E-10442",
    "jane.doe@example.com",
    "jdoe",
    "",
    " ",
    "   \t ",
];

/// Dates at the edges, valid and not.
pub const DATES: &[&str] = &[
    "2024-02-29",
    "2023-02-29",
    "2024-02-30",
    "2024-13-01",
    "0000-01-01",
    "0001-01-01",
    "9999-12-31",
    "+10000-01-01",
    "-0001-12-31",
    "262143-12-31",
    "+262143-12-31T23:59:59",
    "+262143-12-31T23:30:00Z",
    "-262143-01-01T00:00:00",
    "-262144-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "2038-01-19T03:14:08Z",
    "2024-03-15T12:00:00+14:00",
    "2024-03-15T12:00:00-12:00",
    "2024-03-15T12:00:00+23:59",
    "2024-03-15T12:00:00+24:00",
    "2024-03-15T24:00:00Z",
    "2024-03-15T23:59:60Z",
    "2024-03-10T02:30:00",
    "2024-03-31T02:30:00",
    "2024-10-27T02:30:00",
    "2024-03-15T12:00:00.999999999999Z",
    "2024-03-15 12:00:00+0000",
    "2024-03-15T12:00:00",
    "2024-03-15T00:00:04.211873",
    "15/03/2024",
    "2024-W11-5",
    "1710503940",
    "yesterday",
    "",
];

/// Numbers as written in JSON text, including those an f64 or i64 cannot hold.
pub const NUMBERS: &[&str] = &[
    "123456789012345678901234567890",
    "123456789012345678901234567891",
    "-123456789012345678901234567890",
    "3332883854254932743",
    "3332883854254932744",
    "9007199254740993",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "-9223372036854775809",
    "1e400",
    "-1e400",
    "1e-400",
    "1E2",
    "1.0",
    "0.5",
    "-0",
    "0",
    "1",
    "-1",
    "1042",
    "1710503940",
    "253402300799",
    "253402300800",
    "8210266876799",
    "8210266876800",
    "-62135596800",
    "-62135596801",
    "-8334601228800",
];

/// Characters a random string is built from: ASCII, specials, and a few multibyte ones.
const ALPHABET: &[char] = &[
    'a',
    'b',
    'z',
    'A',
    'Z',
    '0',
    '9',
    ' ',
    '.',
    '-',
    '_',
    '@',
    '*',
    '(',
    ')',
    '\\',
    '/',
    '=',
    ',',
    '+',
    '"',
    '#',
    ';',
    '<',
    '>',
    '%',
    '?',
    '&',
    '\'',
    '\0',
    '\n',
    '\u{7f}',
    '\u{a0}',
    'é',
    'ｄ',
    'а',
    '\u{202e}',
    '\u{200b}',
    '\u{feff}',
    '\u{10ffff}',
    '😀',
    '\u{2003}',
    'İ',
    'ß',
];

/// A random hostile string: one from the lists, a random mix, a tweak of `base`, or long.
pub fn hostile_string(rng: &mut Rng, base: &str) -> String {
    match rng.below(10) {
        0 => rng.pick(LOOKALIKES).to_string(),
        1 => rng.pick(CONTROLS).to_string(),
        2 | 3 => rng.pick(INJECTIONS).to_string(),
        4 => rng.pick(DATES).to_string(),
        5 => random_chars(rng, 24),
        6 => tweak(rng, base),
        7 => {
            let mut s = base.to_string();
            let at = char_boundary(&s, rng.below(s.len() + 1));
            s.insert_str(at, rng.pick::<&str>(CONTROLS));
            s
        }
        8 => long_string(rng),
        _ => format!("{}{}", rng.pick(INJECTIONS), rng.pick(LOOKALIKES)),
    }
}

/// Up to `max` random characters of the alphabet.
pub fn random_chars(rng: &mut Rng, max: usize) -> String {
    let n = rng.below(max + 1);
    (0..n).map(|_| *rng.pick(ALPHABET)).collect()
}

/// A long string: 1 KiB to 300 KiB, sometimes past the default body limit.
fn long_string(rng: &mut Rng) -> String {
    // Past 64 KiB only now and then: such inputs cost the most and find the least.
    let n = if rng.chance(1, 5) {
        *rng.pick(&[200_000usize, 270_000])
    } else {
        *rng.pick(&[1_000usize, 10_000, 65_536])
    };
    let unit = rng.pick(&["a", "ｄ", "\\", "*", " ", "\u{202e}"]);
    unit.repeat(n / unit.len().max(1))
}

fn char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i.min(s.len())
}

/// A small change to a string: case, a look-alike letter, spaces, a doubled or cut end.
pub fn tweak(rng: &mut Rng, s: &str) -> String {
    match rng.below(8) {
        0 => s.to_uppercase(),
        1 => format!(" {s} "),
        2 => s
            .chars()
            .map(|c| match c {
                'a' => 'а',
                'e' => 'е',
                'o' => 'о',
                c if c.is_ascii_alphanumeric() => {
                    char::from_u32(c as u32 - 0x20 + 0xFF00).unwrap_or(c)
                }
                c => c,
            })
            .collect(),
        3 => format!("{s}{s}"),
        4 => s.chars().take(s.chars().count() / 2).collect(),
        5 => format!("{s}\u{0}"),
        6 => format!("\u{202e}{s}"),
        _ => s.chars().rev().collect(),
    }
}

/// What was done to a body, for the report.
#[derive(Debug, Default)]
pub struct Mutated {
    /// The body bytes.
    pub body: Vec<u8>,
    /// One short line per mutation.
    pub log: Vec<String>,
}

/// Text to splice into the written JSON in place of a marker.
struct Raws(Vec<(String, String)>);

impl Raws {
    /// A marker value that is replaced by `raw` (quotes included) after writing.
    fn value(&mut self, raw: String) -> Value {
        let marker = format!("\u{1}RAW{}\u{1}", self.0.len());
        let written = format!("\"\\u0001RAW{}\\u0001\"", self.0.len());
        self.0.push((written, raw));
        Value::String(marker)
    }

    /// A marker key that is replaced by `key` after writing, to duplicate a key.
    fn key(&mut self, key: &str) -> String {
        let marker = format!("\u{1}KEY{}\u{1}", self.0.len());
        let written = format!("\"\\u0001KEY{}\\u0001\"", self.0.len());
        self.0
            .push((written, serde_json::to_string(key).unwrap_or_default()));
        marker
    }

    fn apply(&self, mut text: String) -> String {
        // Last first: a later marker's text may hold earlier markers (nesting around them).
        for (marker, raw) in self.0.iter().rev() {
            text = text.replacen(marker.as_str(), raw, 1);
        }
        text
    }
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

fn paths(v: &Value, here: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                here.push(Seg::Key(k.clone()));
                paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                here.push(Seg::Index(i));
                paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'v>(v: &'v mut Value, path: &[Seg]) -> Option<&'v mut Value> {
    let mut cur = v;
    for seg in path {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (Seg::Index(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn leaves(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => m.values().for_each(|c| leaves(c, out)),
        Value::Array(a) => a.iter().for_each(|c| leaves(c, out)),
        other => out.push(other.clone()),
    }
}

fn show(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                s.push('/');
                s.extend(k.chars().take(30));
            }
            Seg::Index(i) => s.push_str(&format!("/{i}")),
        }
    }
    if s.is_empty() {
        "/".to_string()
    } else {
        s
    }
}

/// Deep nesting around `inner`, as raw text: arrays or objects, at and past serde's limit.
fn nested(rng: &mut Rng, inner: &str) -> String {
    let depth = *rng.pick(&[2usize, 16, 64, 125, 126, 127, 128, 129, 500, 20_000]);
    if rng.chance(1, 2) {
        format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
    } else {
        format!("{}{inner}{}", "{\"a\":".repeat(depth), "}".repeat(depth))
    }
}

/// A random value of another type than `old`.
fn retype(rng: &mut Rng, old: &Value, raws: &mut Raws) -> Value {
    let text = match old {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match rng.below(9) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(1, 2)),
        2 => match text.trim().parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(rng.range(-5, 5)),
        },
        3 => Value::String(text),
        4 => Value::Array(vec![old.clone()]),
        5 => {
            let mut m = Map::new();
            m.insert("value".to_string(), old.clone());
            Value::Object(m)
        }
        6 => Value::Array(Vec::new()),
        7 => Value::Object(Map::new()),
        _ => raws.value(rng.pick(NUMBERS).to_string()),
    }
}

/// One mutation of `root`, described in one line.
fn mutate_once(rng: &mut Rng, root: &mut Value, dict: &[String], raws: &mut Raws) -> String {
    let mut all = Vec::new();
    paths(root, &mut Vec::new(), &mut all);
    let path = rng.pick(&all).clone();
    let mut pool = Vec::new();
    leaves(root, &mut pool);
    if pool.is_empty() {
        pool.push(Value::Null);
    }
    let where_ = show(&path);
    let op = rng.below(16);
    // Operations on the parent: drop, rename, duplicate the key.
    if op < 3 {
        if let Some((Seg::Key(k), parent_path)) = path.split_last() {
            if let Some(Value::Object(parent)) = at_mut(root, parent_path) {
                match op {
                    0 => {
                        parent.remove(k);
                        return format!("drop {where_}");
                    }
                    1 => {
                        if let Some(v) = parent.remove(k) {
                            let new = if rng.chance(1, 2) {
                                tweak(rng, k)
                            } else {
                                rng.pick(dict).clone()
                            };
                            parent.insert(new.clone(), v);
                            return format!("rename {where_} to {new:?}");
                        }
                    }
                    _ => {
                        let value = if rng.chance(1, 2) {
                            Value::String(hostile_string(rng, k))
                        } else {
                            rng.pick(&pool).clone()
                        };
                        let marker = raws.key(k);
                        // A marker key sorts before letters, so the copy comes first.
                        parent.insert(marker, value);
                        return format!("duplicate key {where_}");
                    }
                }
            }
        }
    }
    let Some(node) = at_mut(root, &path) else {
        return "none".to_string();
    };
    match op {
        3 | 4 => {
            let new = retype(rng, node, raws);
            *node = new;
            format!("retype {where_}")
        }
        5..=7 => {
            let base = match &*node {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let s = hostile_string(rng, &base);
            let shown: String = s.chars().take(40).collect();
            *node = Value::String(s);
            format!("string {where_} = {shown:?}")
        }
        8 => {
            let n = rng.pick(NUMBERS).to_string();
            *node = raws.value(n.clone());
            format!("number {where_} = {n}")
        }
        9 => {
            let d = rng.pick(DATES).to_string();
            *node = Value::String(d.clone());
            format!("date {where_} = {d:?}")
        }
        10 => {
            let inner = serde_json::to_string(node).unwrap_or_default();
            let raw = nested(rng, &inner);
            *node = raws.value(raw);
            format!("nest {where_}")
        }
        11 => {
            let d = rng.pick(dict).clone();
            *node = Value::String(d.clone());
            format!("dict {where_} = {d:?}")
        }
        12 => {
            let v = rng.pick(&pool).clone();
            *node = v;
            format!("copy a leaf to {where_}")
        }
        13 => match node {
            Value::Object(m) => {
                let k = rng.pick(dict).clone();
                m.insert(k.clone(), Value::String(hostile_string(rng, &k)));
                format!("add key {k:?} at {where_}")
            }
            Value::Array(a) if !a.is_empty() => {
                let first = a[0].clone();
                // At most about 600 KB of copies: past the body limit, more costs only time.
                let size = serde_json::to_string(&first).map_or(1, |t| t.len() + 1);
                let copies = (*rng.pick(&[1usize, 2, 50, 1000]))
                    .min(600_000 / size)
                    .max(1);
                for _ in 0..copies {
                    a.push(first.clone());
                }
                format!("repeat an element {copies} times at {where_}")
            }
            other => {
                *other = Value::Array(vec![other.clone(), other.clone()]);
                format!("listify {where_}")
            }
        },
        14 => match node {
            Value::String(s) => {
                let t = tweak(rng, s);
                *s = t;
                format!("tweak {where_}")
            }
            Value::Number(n) => {
                let t = n.to_string();
                *node = Value::String(t);
                format!("number as string {where_}")
            }
            other => {
                *other = Value::Null;
                format!("null {where_}")
            }
        },
        _ => {
            *node = Value::String(rng.pick(LOOKALIKES).to_string());
            format!("look-alike {where_}")
        }
    }
}

/// Byte-level damage after writing: invalid UTF-8, truncation, BOM, junk, padding.
fn damage(rng: &mut Rng, body: &mut Vec<u8>) -> String {
    match rng.below(8) {
        0 | 1 => {
            let bad: &[u8] = rng.pick::<&[u8]>(&[
                &[0xFF][..],
                &[0xC3],
                &[0xC0, 0xAF],
                &[0xED, 0xA0, 0x80],
                &[0xF4, 0x90, 0x80, 0x80],
                &[0x00],
            ]);
            // Inside a string when there is one: after a random quote.
            let quotes: Vec<usize> = body
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'"')
                .map(|(i, _)| i + 1)
                .collect();
            let at = if quotes.is_empty() {
                rng.below(body.len() + 1)
            } else {
                *rng.pick(&quotes)
            };
            body.splice(at..at, bad.iter().copied());
            format!("invalid utf-8 {bad:02x?} at {at}")
        }
        2 => {
            let at = rng.below(body.len() + 1);
            body.truncate(at);
            format!("truncate at {at}")
        }
        3 => {
            body.splice(0..0, [0xEF, 0xBB, 0xBF]);
            "bom".to_string()
        }
        4 => {
            let junk: &[u8] = rng.pick::<&[u8]>(&[&b"}"[..], b" {}", b"\0", b"garbage", b"\n\n"]);
            body.extend_from_slice(junk);
            "trailing junk".to_string()
        }
        5 => {
            let json_escape: &[u8] = rng.pick::<&[u8]>(&[
                &b"\"\\ud800\""[..],
                b"\"\\udc00\\ud800\"",
                b"\"\\u0000\"",
                b"\"\\uFFFF\"",
                b"\"\\x41\"",
            ]);
            // A whole string value replaced by a raw escape.
            if let Some(colon) = body.iter().position(|b| *b == b':') {
                let end = body[colon + 1..]
                    .iter()
                    .position(|b| *b == b',' || *b == b'}')
                    .map_or(body.len(), |e| colon + 1 + e);
                body.splice(colon + 1..end, json_escape.iter().copied());
            }
            "raw json escape".to_string()
        }
        6 => {
            let pad = " ".repeat(*rng.pick(&[1usize, 1000, 10_000]));
            body.splice(0..0, pad.bytes());
            "leading whitespace".to_string()
        }
        _ => {
            let whole: &[u8] = rng.pick::<&[u8]>(&[
                &b""[..],
                b"null",
                b"[]",
                b"{}",
                b"\"x\"",
                b"0",
                b"Ping test",
                b"{\"text\":\"Ping test\"}",
                b"employees[0][id]=1",
                b"type=x",
            ]);
            *body = whole.to_vec();
            "whole body replaced".to_string()
        }
    }
}

/// Mutates a JSON body at 1 to 4 places, then damages the bytes with probability 1/8.
pub fn mutate_json(rng: &mut Rng, seed: &Value, dict: &[String]) -> Mutated {
    let mut v = seed.clone();
    let mut raws = Raws(Vec::new());
    let mut log = Vec::new();
    let n = 1 + rng.below(4);
    for _ in 0..n {
        log.push(mutate_once(rng, &mut v, dict, &mut raws));
    }
    let text = if rng.chance(1, 4) {
        serde_json::to_string_pretty(&v)
    } else {
        serde_json::to_string(&v)
    }
    .unwrap_or_default();
    let mut body = raws.apply(text).into_bytes();
    if rng.chance(1, 8) {
        log.push(damage(rng, &mut body));
    }
    Mutated { body, log }
}

/// Every string in a JSON value (keys and values), for a dictionary.
pub fn strings_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                out.push(k.clone());
                strings_of(c, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| strings_of(c, out)),
        Value::String(s) => out.push(s.clone()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_become_raw_text() {
        let mut raws = Raws(Vec::new());
        let mut m = Map::new();
        m.insert("id".to_string(), raws.value(NUMBERS[0].to_string()));
        let dup = raws.key("id");
        m.insert(dup, Value::from(1));
        let text = raws.apply(serde_json::to_string(&Value::Object(m)).expect("writes"));
        assert_eq!(text.matches("\"id\":").count(), 2, "{text}");
        assert!(text.contains(&format!("\"id\":{}", NUMBERS[0])), "{text}");
        assert!(text.contains("\"id\":1"), "{text}");
    }

    #[test]
    fn mutations_are_seeded() {
        let seed: Value = serde_json::json!({"a": {"b": [1, "x"]}, "c": "d"});
        let dict = vec!["k".to_string()];
        for s in 0..200 {
            let a = mutate_json(&mut Rng::new(s), &seed, &dict);
            let b = mutate_json(&mut Rng::new(s), &seed, &dict);
            assert_eq!(a.body, b.body);
            assert_eq!(a.log, b.log);
        }
    }
}
