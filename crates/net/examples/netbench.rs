//! Driver for bench/network.sh: sets up a berth network with two
//! sandboxes (the second publishing a port), tears it down, and times
//! endpoint setup/teardown.
//!
//! ```text
//! netbench setup DIR PORT      # prints S1= S2= IP1= IP2= GW= shell assignments
//! netbench churn DIR N         # N × (attach, detach) of one endpoint; prints mean ms
//! netbench teardown DIR
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use berth_net::{AttachOptions, Config, NetError, NetworkManager, NetworkSpec, Result, Subnet};

fn manager(dir: &Path) -> Result<NetworkManager> {
    let config = Config {
        bridge_prefix: "bbench".into(),
        nft_table: "berth_bench".into(),
        default_subnet_pool: "10.199.240.0/20".parse::<Subnet>()?,
        ..Config::default()
    };
    std::fs::create_dir_all(dir).map_err(|source| NetError::Io {
        what: format!("create {}", dir.display()),
        source,
    })?;
    NetworkManager::open(&dir.join("berth.db"), &dir.join("run"), config)
}

fn setup(dir: &Path, port: u16) -> Result<()> {
    let mut m = manager(dir)?;
    let net = m.create_network(&NetworkSpec {
        name: "bench".into(),
        ..Default::default()
    })?;
    let s1 = m.create_sandbox("s1")?;
    let s2 = m.create_sandbox("s2")?;
    let e1 = m.attach("s1", &s1, "bench", &AttachOptions::default())?;
    let opts = AttachOptions {
        ports: vec![format!("{port}:5201").parse()?],
        ..Default::default()
    };
    let e2 = m.attach("s2", &s2, "bench", &opts)?;
    println!(
        "S1={}\nS2={}\nIP1={}\nIP2={}\nGW={}",
        s1.display(),
        s2.display(),
        e1.ip,
        e2.ip,
        net.gateway
    );
    Ok(())
}

fn churn(dir: &Path, n: u32) -> Result<()> {
    let mut m = manager(dir)?;
    let ns: PathBuf = m.create_sandbox("churn")?;
    let (mut up, mut down) = (0f64, 0f64);
    for _ in 0..n {
        let t = Instant::now();
        m.attach("churn", &ns, "bench", &AttachOptions::default())?;
        up += t.elapsed().as_secs_f64();
        let t = Instant::now();
        m.detach("churn", "bench")?;
        down += t.elapsed().as_secs_f64();
    }
    m.release_all("churn")?;
    println!(
        "SETUP_MS={:.3}\nTEARDOWN_MS={:.3}",
        up * 1000.0 / f64::from(n),
        down * 1000.0 / f64::from(n)
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["setup", dir, port] => match port.parse() {
            Ok(p) => setup(Path::new(dir), p),
            Err(_) => Err(NetError::InvalidPort {
                spec: port.to_string(),
                reason: "not a port number".into(),
            }),
        },
        ["churn", dir, n] => churn(Path::new(dir), n.parse().unwrap_or(20)),
        ["teardown", dir] => manager(Path::new(dir)).and_then(|mut m| m.reset()),
        _ => {
            eprintln!("usage: netbench setup DIR PORT | churn DIR N | teardown DIR");
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netbench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
