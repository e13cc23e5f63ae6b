//! `kwokctl scale` flags.

use clap::Args;

/// `scale KIND [NAME] --replicas N`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kwokctl scale node --replicas 1000
  kwokctl scale node big --replicas 10 --param '.status.allocatable.cpu=\"64\"'
  kwokctl scale pod web -n default --replicas 500")]
pub struct ScaleArgs {
    /// Kind of object: node (no), pod (po).
    pub kind: String,
    /// Prefix of the object names (`NAME-000000`, `NAME-000001`, …); default: the kind.
    #[arg(value_name = "NAME")]
    pub prefix: Option<String>,
    /// How many objects there should be; more are created, the newest are deleted.
    #[arg(long)]
    pub replicas: u32,
    /// A jq assignment applied to the template, e.g. `.metadata.labels.zone="a"`; repeatable.
    #[arg(long = "param", value_name = "JQ")]
    pub params: Vec<String>,
    /// Namespace of namespaced kinds.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Digits of the serial number in the names.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u8).range(1..=12))]
    pub serial_length: u8,
    /// Requests per second at most (0: no limit).
    #[arg(long, default_value_t = 2000)]
    pub qps: u32,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
}
