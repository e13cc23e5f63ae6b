//! `kwokctl scale` flags.

use clap::Args;

/// `scale KIND [NAME] --replicas N`.
#[derive(Debug, Args)]
#[command(after_help = "KIND is looked up in this order:
  1. a KwokctlResource of that metadata.name in the --config files (default
     ~/.kwok/kwok.yaml): its Go template, with the --params applied to its parameters;
  2. node or pod: the built-in fake node / fake pod templates;
  3. any resource the cluster serves, by plural, singular, short name or Kind,
     optionally group-qualified (deployments.apps): a minimal object (apiVersion,
     kind, name, scale label, namespace) with the --params applied to it.

Examples:
  kwokctl scale node --replicas 1000
  kwokctl scale node big --replicas 10 --param '.allocatable.cpu=\"64\"'
  kwokctl scale pod web -n default --replicas 500
  kwokctl scale configmap cm --replicas 5 --param '.data.key=\"value\"'
  kwokctl scale widget --config widget.yaml --replicas 3   # a KwokctlResource")]
pub struct ScaleArgs {
    /// What to make: a KwokctlResource name, node (no), pod (po), or any served
    /// resource (configmap, cm, deployments.apps, …).
    pub kind: String,
    /// Prefix of the object names (`NAME-000000`, `NAME-000001`, …); default: the kind.
    #[arg(value_name = "NAME")]
    pub prefix: Option<String>,
    /// How many objects there should be; more are created, the newest are deleted.
    #[arg(long, default_value_t = 1)]
    pub replicas: u32,
    /// A jq assignment applied to the template; repeatable. Node parameters as upstream:
    /// `.allocatable.cpu="4000m"`, `.capacity.X`, `.nodeInfo.architecture`; any other path
    /// sets the object's field, e.g. `.metadata.labels.zone="a"`. For a KwokctlResource
    /// it is applied to the resource's parameters.
    #[arg(long = "param", value_name = "JQ")]
    pub params: Vec<String>,
    /// Namespace of namespaced kinds [default: a KwokctlResource's own, else default]
    #[arg(short, long)]
    pub namespace: Option<String>,
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
            (args.prefix.as_deref(), args.namespace.as_deref()),
            (Some("web"), Some("x"))
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
