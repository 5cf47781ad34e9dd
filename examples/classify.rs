//! `cargo run --release --example classify -- WEIGHTS IMAGE...`: the top 5 classes of each
//! image, batched on the GPU (any weights file; the preset is inferred from its keys).

use alexnet_wgpu::AlexNet;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, images @ ..] = args.as_slice() else {
        return Err("usage: classify WEIGHTS IMAGE...".into());
    };
    let net = AlexNet::from_file(weights)?;
    for c in net.classify(images, 5)? {
        println!("{}", c.path.display());
        if let Some(e) = &c.error {
            println!("  error: {e}");
        }
        for p in &c.top {
            println!("  {:6.2}%  {}", 100.0 * p.prob, p.label);
        }
    }
    Ok(())
}
