//! `cargo run --release --example embed -- WEIGHTS DIR OUT.npy`: the fc7 embedding (4096
//! floats with torchvision's net) of every image in a flat folder, one row per image in sorted
//! name order, as a float32 `.npy` [images, dim].

use alexnet_wgpu::{AlexNet, Tap};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, dir, out] = args.as_slice() else {
        return Err("usage: embed WEIGHTS DIR OUT.npy".into());
    };
    let mut images: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    images.retain(|p| p.is_file());
    images.sort();
    let net = AlexNet::from_file(weights)?;
    let e = net.embed(&images, Tap::Fc7)?;
    for why in &e.failed {
        eprintln!("skipped {why}"); // `why.kind` says what was wrong
    }
    alexnet_wgpu::weights::write_npy(out.as_ref(), &[e.len(), e.dim], &e.rows)?;
    println!("{} rows of {} floats -> {out}", e.len(), e.dim);
    Ok(())
}
