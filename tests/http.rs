//! The HTTP server's limits on a real socket: a client that never finishes its request headers
//! is closed, and a connection over the cap is closed at once while the others are served.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use axum::{Router, routing::get};
use relman::http::{Limits, serve_router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves `GET /` within `limits` on a free port; the address.
async fn server(limits: Limits) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route("/", get(|| async { "ok" }));
    tokio::spawn(serve_router(
        listener,
        router,
        limits,
        std::future::pending(),
    ));
    addr
}

/// Reads until the server closes the connection, or `within` passes (then `None`).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return all,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
}

async fn get_ok(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: relman\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(stream, Duration::from_secs(5))
        .await
        .expect("answered and closed");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_closed() {
    let addr = server(Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: relman\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(5))
            .await
            .is_some(),
        "a request whose headers never end is cut off"
    );
    // A client that does finish is served.
    let mut fine = TcpStream::connect(addr).await.unwrap();
    assert!(get_ok(&mut fine).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once() {
    let addr = server(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    // Let the server accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    let answer = closed_within(&mut third, Duration::from_secs(2)).await;
    assert_eq!(
        answer.as_deref(),
        Some(&[][..]),
        "the connection over the cap is closed without an answer"
    );
    // The two within the cap are served, and their slots come back when they close.
    assert!(get_ok(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(get_ok(&mut second).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = TcpStream::connect(addr).await.unwrap();
    assert!(get_ok(&mut again).await.starts_with("HTTP/1.1 200"));
}
