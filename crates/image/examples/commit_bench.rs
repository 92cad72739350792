//! Commit benchmark helper for bench/image.sh: prepares a container rootfs
//! on IMAGE in the store at ROOT, writes MB megabytes of fresh data into
//! it (as a container would: through the mounted snapshot), then times
//! `commit_container` alone and prints the seconds and the new image id.
//!
//! Usage: commit_bench ROOT IMAGE MB

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use berth_image::snapshot::MountGuard;
use berth_image::{CommitOptions, ImageStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, root, image, mb] = args.as_slice() else {
        return Err("usage: commit_bench ROOT IMAGE MB".into());
    };
    let root = PathBuf::from(root);
    let store = ImageStore::open(&root, &root.join("berth.db"))?;
    let id = format!("commitbench{}", std::process::id());
    let mounts = store.prepare_container_rootfs(image, &id)?;
    let target = tempfile::tempdir_in(root.join("tmp"))?;
    {
        let _guard = MountGuard::new(&mounts, target.path())?;
        let mut f = std::fs::File::create(target.path().join("big.bin"))?;
        // Incompressible-ish content (xorshift), like a real 100 MB change.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..mb.parse::<usize>()? {
            for chunk in buf.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
            }
            f.write_all(&buf)?;
        }
        f.sync_all()?;
    }
    let start = Instant::now();
    let new = store.commit_container(&id, &CommitOptions::default())?;
    let secs = start.elapsed().as_secs_f64();
    store.release_container(&id)?;
    println!("{secs:.3} {new}");
    Ok(())
}
