//! The `kwok` controller's flags (upstream KWOK's names).

use std::path::PathBuf;

use clap::Parser;

/// kwok makes fake nodes and pods look alive to a real Kubernetes control plane.
#[derive(Debug, Parser)]
#[command(name = "kwok", version, about)]
pub struct Flags {
    /// Path to a kubeconfig; default: $KUBECONFIG, ~/.kube/config, or in-cluster config.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The address of the Kubernetes API server (overrides the kubeconfig's).
    #[arg(long)]
    pub master: Option<String>,
    /// Manage every node in the cluster.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub manage_all_nodes: Option<bool>,
    /// Address of the HTTP server for /healthz (e.g. 127.0.0.1:10247).
    #[arg(long, default_value = "0.0.0.0:10247")]
    pub server_address: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manage_all_nodes_should_accept_go_style_booleans() {
        let bare = Flags::try_parse_from(["kwok", "--manage-all-nodes"]).unwrap();
        let explicit = Flags::try_parse_from(["kwok", "--manage-all-nodes=false"]).unwrap();
        assert_eq!(bare.manage_all_nodes, Some(true));
        assert_eq!(explicit.manage_all_nodes, Some(false));
    }
}
