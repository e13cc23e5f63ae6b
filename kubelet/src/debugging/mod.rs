//! Logs, exec, attach and port-forward: upstream's rule kinds and what they do.
