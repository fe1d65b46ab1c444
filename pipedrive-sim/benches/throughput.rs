//! Throughput of the simulator on loopback: a bounded number of keep-alive connections
//! drive it for a few seconds per scenario, and a table of requests per second and
//! latency percentiles is printed.
//!
//! `cargo bench -p pipedrive-sim --bench throughput [-- SECONDS [CONNECTIONS]]`

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipedrive_sim::SimConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Copy)]
enum Kind {
    Get,
    List,
    Patch,
}

/// A minimal HTTP/1.1 keep-alive client, so that the client costs little CPU next to the
/// server on a 2-core machine.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn request(&mut self, head: &str, body: &[u8]) -> u16 {
        let mut req = Vec::with_capacity(head.len() + body.len());
        req.extend_from_slice(head.as_bytes());
        req.extend_from_slice(body);
        self.stream.write_all(&req).await.unwrap();
        self.buf.clear();
        let mut tmp = [0u8; 16 * 1024];
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let headers = std::str::from_utf8(&self.buf[..end])
                    .unwrap()
                    .to_ascii_lowercase();
                let status: u16 = headers[9..12].parse().unwrap();
                let len: usize = headers
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + len {
                    let n = self.stream.read(&mut tmp).await.unwrap();
                    assert!(n > 0, "connection closed");
                    self.buf.extend_from_slice(&tmp[..n]);
                }
                return status;
            }
            let n = self.stream.read(&mut tmp).await.unwrap();
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

async fn worker(
    addr: std::net::SocketAddr,
    mix: Vec<Kind>,
    persons: i64,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> Vec<u32> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut conn = Conn {
        stream,
        buf: Vec::with_capacity(64 * 1024),
    };
    let mut lat = Vec::with_capacity(100_000);
    let mut i = seed;
    while !stop.load(Ordering::Relaxed) {
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let id = (i >> 33) as i64 % persons + 1;
        let kind = mix[(i >> 20) as usize % mix.len()];
        let started = Instant::now();
        let status = match kind {
            Kind::Get => {
                let head = format!("GET /api/v2/persons/{id} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-token: sim-api-token\r\n\r\n");
                conn.request(&head, b"").await
            }
            Kind::List => {
                let head = format!("GET /api/v2/persons?limit=100&cursor={} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-token: sim-api-token\r\n\r\n", cursor(id));
                conn.request(&head, b"").await
            }
            Kind::Patch => {
                let body = format!("{{\"name\":\"Bench Person {i}\",\"job_title\":\"Engineer\"}}");
                let head = format!("PATCH /api/v2/persons/{id} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-token: sim-api-token\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
                conn.request(&head, body.as_bytes()).await
            }
        };
        assert_eq!(status, 200);
        lat.push(started.elapsed().as_micros() as u32);
    }
    lat
}

fn cursor(id: i64) -> String {
    use base64::Engine;
    let json =
        format!("{{\"field\":\"id\",\"fieldValue\":{id},\"sortDirection\":\"asc\",\"id\":{id}}}");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let secs: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(4);
    let conns: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let persons = 10_000;
        let sim = pipedrive_sim::start(SimConfig { persons, ..SimConfig::default() }).await.unwrap();
        let addr = sim.addr();
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        println!("pipedrive-sim throughput: {conns} keep-alive connections on loopback, {secs} s per scenario, {persons} persons, {cores} cores");
        println!();
        println!("| scenario | requests | req/s | p50 (ms) | p99 (ms) |");
        println!("|---|---:|---:|---:|---:|");
        let scenarios: Vec<(&str, Vec<Kind>)> = vec![
            ("GET /api/v2/persons/{id}", vec![Kind::Get]),
            ("GET /api/v2/persons?limit=100 (cursor)", vec![Kind::List]),
            ("PATCH /api/v2/persons/{id}", vec![Kind::Patch]),
            ("mix 70% get / 20% list / 10% patch", [vec![Kind::Get; 7], vec![Kind::List; 2], vec![Kind::Patch]].concat()),
        ];
        for (name, mix) in scenarios {
            let stop = Arc::new(AtomicBool::new(false));
            let started = Instant::now();
            let tasks: Vec<_> = (0..conns)
                .map(|c| tokio::spawn(worker(addr, mix.clone(), persons as i64, c as u64 + 1, stop.clone())))
                .collect();
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stop.store(true, Ordering::Relaxed);
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await.unwrap());
            }
            let elapsed = started.elapsed().as_secs_f64();
            lat.sort_unstable();
            let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
            println!("| {name} | {} | {:.0} | {:.2} | {:.2} |", lat.len(), lat.len() as f64 / elapsed, pct(0.50), pct(0.99));
        }
        sim.shutdown().await;
    });
}
