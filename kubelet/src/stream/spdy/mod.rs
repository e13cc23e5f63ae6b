//! SPDY/3.1, server side: the frame codec and a session that accepts the peer's streams.
//!
//! kube speaks SPDY/3.1 through github.com/moby/spdystream: the client opens every stream
//! with headers that say what it is for (`streamType`, `port`, `requestID`), the server
//! replies and both sides exchange DATA until FIN or RST_STREAM.

mod connection;
mod dictionary;
pub mod frame;
mod header_block;
mod stream;

pub use connection::{Connection, IncomingStream, SessionError};
pub use stream::SpdyStream;
