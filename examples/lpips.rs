//! LPIPS between two images, with the per-layer terms and the spatial map's hottest pixel.
//!
//!     cargo run --release --example lpips -- ALEXNET_WEIGHTS A.png B.png
//!
//! ALEXNET_WEIGHTS: any torchvision AlexNet weights file (`alexnet fetch-weights` caches one);
//! only the `features` convolutions are used. Distances match `lpips.LPIPS(net='alex')`.

use alexnet_wgpu::gpu::{AdapterChoice, GpuContext};
use alexnet_wgpu::lpips::load_image;
use alexnet_wgpu::{Lin, Lpips};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, a, b] = &args[..] else {
        return Err("usage: lpips WEIGHTS A B".into());
    };
    let ctx = GpuContext::new(&AdapterChoice::default())?;
    let lpips = Lpips::load(&ctx, weights, Lin::V0_1)?;
    let (a, b) = (load_image(a, None)?, load_image(b, None)?);
    let s = lpips.spatial(&a, &b)?;
    println!("LPIPS (v0.1): {:.6}", s.distance.distance);
    for (k, term) in s.distance.layers.iter().enumerate() {
        println!("  relu{}: {term:.6}", k + 1);
    }
    let (i, v) = s
        .map
        .data
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m });
    let (x, y) = (i % s.map.width, i / s.map.width);
    println!("most different at x={x}, y={y} ({v:.6})");
    Ok(())
}
