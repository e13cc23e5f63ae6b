//! The kubelet API of kwok's fake nodes, as the apiserver and metrics-server reach it:
//! the streaming protocols (`stream`), the debugging rules and their actions
//! (`debugging`: logs, exec, attach, port-forward) and resource metrics (`metrics`).
#![warn(missing_docs)]

pub mod debugging;
pub mod metrics;
pub mod stream;
