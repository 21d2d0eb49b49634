//! `revoked-probe [URL]`: the container's HEALTHCHECK without a shell or curl. Sends one
//! `GET` to an `http://HOST:PORT/PATH` URL (default `http://127.0.0.1:8470/livez`) and exits 0 on
//! a 2xx answer, 1 otherwise (refused, timed out, another status). Standard library only, built by
//! deploy/container/Dockerfile with `rustc`; crates/daemon/tests/deploy_files.rs runs it against a
//! real revoked.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

const DEFAULT_URL: &str = "http://127.0.0.1:8470/livez";
const TIMEOUT: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    match probe(&url) {
        Ok(status) if (200..300).contains(&status) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("revoked-probe: {url} answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("revoked-probe: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The status code of one `GET` of `url`.
fn probe(url: &str) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("expected an http:// url, found {url:?}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("expected HOST:PORT, found {authority:?} ({e})"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: revoked-probe\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    // The status line is all that is needed: at most 1 KiB is read.
    let mut head = [0u8; 1024];
    let mut len = 0;
    while len < head.len() && !head[..len].windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => return Err(e.to_string()),
        }
    }
    let line = String::from_utf8_lossy(&head[..len]);
    let line = line.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(status))) if v.starts_with("HTTP/1.") => Ok(status),
        _ => Err(format!("expected an HTTP/1.x status line, found {line:?}")),
    }
}
