//! Bounded servers: slow, lying and numerous clients cost a bounded share
//! of the edge, and a well-behaved client from another address is served
//! meanwhile. The POP runs with short limits so that the bounds act within
//! a test's time; what is asserted is outcomes (served, answered `408`,
//! closed), never how fast.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tally::pop::EdgeSettings;
use tally::traffic::{json_array, now_ms, ClickGen, GenOptions};
use tally_http::limits::ServerLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::{self, CONVERGE};

/// Attacking addresses (all loopback on Linux); the good client is 127.0.0.1.
const ATTACKERS: std::ops::RangeInclusive<u8> = 2..=9;
const PER_ATTACKER: usize = 150;

fn short_limits() -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_secs(2),
        body_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(4),
        keep_alive_timeout: Duration::from_secs(3),
        // Below PER_ATTACKER, so every attacking address also meets the cap.
        max_connections_per_ip: 100,
        ..ServerLimits::default()
    }
}

async fn connect_from(ip: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(to).await
}

/// Reads until the server closes (or resets) the connection; returns what it
/// sent. Panics if it is still open after `CONVERGE`.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(CONVERGE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.expect("the edge kept a stalled connection open");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_stalled_bodies_are_cut_off_while_others_are_served() {
    // The test holds over a thousand sockets itself.
    tally_http::limits::raise_nofile_limit();
    let pop = harness::start_with(&["acme"], EdgeSettings { limits: short_limits(), ..EdgeSettings::default() }).await;
    let key = pop.ingest_key(0);
    let edge: SocketAddr = pop.pop.state.edge_http.trim_start_matches("http://").parse().unwrap();

    // Slowloris from 8 addresses: each connection sends part of a head and
    // then a header line now and then, forever; when the edge cuts it off
    // (header timeout) or refuses it (per-address cap), it comes back.
    let stop = Arc::new(AtomicBool::new(false));
    let cut_off = Arc::new(AtomicUsize::new(0));
    let mut attackers = tokio::task::JoinSet::new();
    for last in ATTACKERS {
        let ip = IpAddr::from([127, 0, 0, last]);
        for _ in 0..PER_ATTACKER {
            let (stop, cut_off) = (stop.clone(), cut_off.clone());
            attackers.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = connect_from(ip, edge).await else {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    let _ = s.write_all(b"POST /v1/clicks HTTP/1.1\r\nHost: edge\r\n").await;
                    let mut buf = [0u8; 512];
                    loop {
                        tokio::select! {
                            read = s.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) { break },
                            _ = tokio::time::sleep(Duration::from_millis(700)) => {
                                if stop.load(Ordering::Relaxed) { return; }
                                let _ = s.write_all(b"X-Slow: 1\r\n").await;
                            }
                        }
                    }
                    cut_off.fetch_add(1, Ordering::Relaxed);
                    // Not a busy loop: the test's two cores are the edge's too.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    }
    // The attack is under way once the edge has cut off at least one
    // connection per attacking address.
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while cut_off.load(Ordering::Relaxed) < ATTACKERS.count() {
        assert!(tokio::time::Instant::now() < deadline, "the edge never closed a slowloris connection");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Meanwhile a well-behaved client is served.
    let mut generator = ClickGen::new(GenOptions { seed: 11, ads: 3, ..GenOptions::default() });
    for _ in 0..5 {
        let reply = pop.post(&key, "application/json", json_array(&generator.events(20, now_ms()))).await;
        assert_eq!(reply.status, StatusCode::OK, "a good client was not served during the slowloris: {}", reply.text());
    }

    // A lying Content-Length: the body stops short and the edge answers 408.
    let mut lying = connect_from([127, 0, 0, 1].into(), edge).await.unwrap();
    let head = format!(
        "POST /v1/clicks HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[{{\"ad_id\": 1"
    );
    lying.write_all(head.as_bytes()).await.unwrap();
    let answer = String::from_utf8_lossy(&until_closed(&mut lying).await).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "a stalled body was answered {answer:?}");

    // An endless chunked body, a byte at a time well within the idle
    // timeout: the request deadline ends it.
    let mut endless = connect_from([127, 0, 0, 1].into(), edge).await.unwrap();
    let head = format!(
        "POST /v1/clicks HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    endless.write_all(head.as_bytes()).await.unwrap();
    let (mut read_half, mut write_half) = endless.into_split();
    let trickle = tokio::spawn(async move {
        while write_half.write_all(b"1\r\n \r\n").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut got = Vec::new();
    let read = tokio::time::timeout(CONVERGE, read_half.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "an endless chunked body kept its connection open");
    let answer = String::from_utf8_lossy(&got).to_string();
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "an endless body was answered {answer:?}");
    trickle.abort();

    // A connection that never sends a byte is closed too.
    let mut silent = connect_from([127, 0, 0, 1].into(), edge).await.unwrap();
    assert!(until_closed(&mut silent).await.is_empty());

    // And after all that, still served.
    let reply = pop.post(&key, "application/json", json_array(&generator.events(20, now_ms()))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // The refusals are counted, not only logged.
    let metrics = pop.client.get(&format!("{}/metrics", pop.pop.state.edge_http), None).await.unwrap().text();
    let refused = metrics.lines().find_map(|l| l.strip_prefix("tally_edge_connections_refused_total ")).and_then(|n| n.trim().parse::<u64>().ok());
    assert!(refused.is_some_and(|n| n > 0), "no refused connection counted: {refused:?}");
    stop.store(true, Ordering::Relaxed);
    attackers.abort_all();
    pop.pop.stop().await;
}
