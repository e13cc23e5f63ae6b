//! The streaming protocols of exec, attach and port-forward (SPDY/3.1 and WebSocket),
//! server side: kwok is the kubelet, the apiserver (or kubectl) the client.
//!
//! A handler negotiates the upgrade from the request headers ([`remotecommand::negotiate`],
//! [`portforward::negotiate`]), answers with the 101 response it gets back, takes the
//! upgraded connection and hands it to [`remotecommand::accept`] or
//! [`portforward::accept`].

pub mod negotiate;
pub mod portforward;
pub mod remotecommand;
pub mod spdy;
pub mod websocket;

#[cfg(test)]
mod tests;
