//! Fine-tune AlexNet from conv4 on class folders and save the model:
//!
//!     cargo run --release --example fine_tune -- WEIGHTS DATA_DIR OUT.npz

use alexnet_wgpu::fine_tune::FineTune;
use alexnet_wgpu::gpu::{AdapterChoice, GpuContext};
use alexnet_wgpu::model::Weights;
use alexnet_wgpu::train::HeadKind;

fn main() -> alexnet_wgpu::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, data, out] = args.as_slice() else {
        eprintln!("usage: fine_tune WEIGHTS DATA_DIR OUT.npz");
        std::process::exit(2);
    };
    let backbone = Weights::load(weights.as_ref(), None)?;
    let ctx = GpuContext::new(&AdapterChoice::default())?;
    let trained = FineTune::with_weights(&ctx, backbone)
        .train_from(HeadKind::Conv(4))
        .epochs(5)
        .on_epoch(|e| eprintln!("epoch {}: train loss {:.4}", e.epoch, e.train_loss))
        .fit(data)?;
    match trained.val_accuracy() {
        Some(a) => println!("validation accuracy {:.1}%", 100.0 * a),
        None => println!("no validation images"),
    }
    trained.save(out)?;
    println!("saved {out}");
    Ok(())
}
