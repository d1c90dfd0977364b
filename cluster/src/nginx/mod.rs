//! nginx in front of the nodes: `conf` writes its config, `instance` runs it.

mod conf;
mod instance;

pub use conf::{Balance, NginxConfig, localize_deploy_conf, test_config};
pub use instance::{NginxBuilder, NginxServer};
