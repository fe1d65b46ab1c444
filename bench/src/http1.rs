//! A minimal HTTP/1.1 keep-alive client for load generation (as the simulator's throughput bench
//! has): one request at a time per connection, the response read to its `content-length`. On a
//! 2-core machine a full client (reqwest: connection pool, tower stack, URL parsing per request)
//! takes CPU from the server it measures; this one costs little next to it.

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) struct Http1Connection {
    stream: TcpStream,
    request: Vec<u8>,
    response: Vec<u8>,
}

impl Http1Connection {
    pub(crate) async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            request: Vec::with_capacity(2048),
            response: Vec::with_capacity(1024),
        })
    }

    /// POSTs `body` as JSON with the given extra header lines (each ending in `\r\n`) and
    /// returns the response's status once the whole response has been read.
    pub(crate) async fn post_json(
        &mut self,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> anyhow::Result<u16> {
        self.request.clear();
        self.request.extend_from_slice(
            format!(
                "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{headers}\r\n",
                body.len()
            )
            .as_bytes(),
        );
        self.request.extend_from_slice(body);
        self.stream.write_all(&self.request).await?;
        self.response.clear();
        let mut chunk = [0_u8; 4096];
        loop {
            if let Some(end) = find(&self.response, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.response[..end])?;
                let status: u16 = head
                    .get(9..12)
                    .context("status line")?
                    .parse()
                    .context("status code")?;
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())
                            .flatten()
                    })
                    .context("the response has no content-length")?;
                while self.response.len() < end + 4 + length {
                    let n = self.stream.read(&mut chunk).await?;
                    anyhow::ensure!(n > 0, "the server closed the connection");
                    self.response.extend_from_slice(&chunk[..n]);
                }
                anyhow::ensure!(
                    self.response.len() == end + 4 + length,
                    "more bytes than one response"
                );
                return Ok(status);
            }
            let n = self.stream.read(&mut chunk).await?;
            anyhow::ensure!(n > 0, "the server closed the connection");
            self.response.extend_from_slice(&chunk[..n]);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
