//! `kwokctl scale` flags.

use clap::Args;

/// `scale KIND [NAME] --replicas N`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kwokctl scale node --replicas 1000
  kwokctl scale node big --replicas 10 --param '.allocatable.cpu=\"64\"'
  kwokctl scale pod web -n default --replicas 500")]
pub struct ScaleArgs {
    /// Kind of object: node (no), pod (po).
    pub kind: String,
    /// Prefix of the object names (`NAME-000000`, `NAME-000001`, …); default: the kind.
    #[arg(value_name = "NAME")]
    pub prefix: Option<String>,
    /// How many objects there should be; more are created, the newest are deleted.
    #[arg(long, default_value_t = 1)]
    pub replicas: u32,
    /// A jq assignment applied to the template; repeatable. Node parameters as upstream:
    /// `.allocatable.cpu="4000m"`, `.capacity.X`, `.nodeInfo.architecture`; any other path
    /// sets the object's field, e.g. `.metadata.labels.zone="a"`.
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

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use crate::flags::{Cli, Command};

    fn scale(args: &[&str]) -> Result<super::ScaleArgs, clap::Error> {
        let cli = Cli::try_parse_from(["kwokctl", "scale"].iter().chain(args))?;
        let Command::Scale(args) = cli.command else {
            panic!("not scale")
        };
        Ok(args)
    }

    #[test]
    fn scale_should_take_kind_optional_name_and_repeated_params() {
        let args = scale(&["node", "--replicas", "3", "--param", ".a=1", "--param", ".b=2"]).unwrap();
        assert_eq!(
            (args.kind.as_str(), args.prefix, args.replicas),
            ("node", None, 3)
        );
        assert_eq!(args.params, [".a=1", ".b=2"]);
        let args = scale(&["pod", "web", "-n", "x", "--replicas", "0"]).unwrap();
        assert_eq!(
            (args.prefix.as_deref(), args.namespace.as_str()),
            (Some("web"), "x")
        );
        assert_eq!((args.serial_length, args.qps, args.concurrency), (6, 2000, 64));
    }

    #[test]
    fn scale_should_default_to_one_replica_and_need_a_positive_concurrency() {
        assert_eq!(scale(&["node"]).unwrap().replicas, 1);
        assert!(scale(&["node", "--replicas", "1", "--concurrency", "0"]).is_err());
        assert!(scale(&["node", "--replicas", "-1"]).is_err());
    }
}
