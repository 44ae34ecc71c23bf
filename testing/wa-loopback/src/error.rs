//! What can go wrong between the loopback server and a client, or a test and the server.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_websockets::Error),
    #[error("noise handshake: {0}")]
    Handshake(String),
    #[error("frame: {0}")]
    Frame(String),
    #[error("binary node: {0}")]
    Node(String),
    #[error("the client closed the socket")]
    Closed,
    #[error("the server dropped the socket")]
    Dropped,
    #[error("the stream was restarted (515)")]
    Restarted,
    #[error("no device of this QR is connected")]
    NoSuchDevice,
    #[error("the account {0} has no live connection")]
    NotConnected(String),
    #[error("bad QR: {0}")]
    BadQr(String),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
}
