//! The per-network DNS server as its own process:
//! `berth-net-dns DB_PATH NETWORK RUN_DIR UPSTREAMS` (UPSTREAMS: `host`,
//! `IP[:PORT],...`, or empty for no forwarding). The engine may run
//! `berth_net::dns::serve` from a hidden subcommand of its own instead.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, network, run_dir, upstreams] = args.as_slice() else {
        eprintln!("usage: berth-net-dns DB_PATH NETWORK RUN_DIR UPSTREAMS");
        return ExitCode::from(2);
    };
    let result = berth_net::dns::parse_upstreams(upstreams)
        .and_then(|up| berth_net::dns::serve(Path::new(db), network, Path::new(run_dir), up));
    match result {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("berth-net-dns: {e}");
            ExitCode::FAILURE
        }
    }
}
