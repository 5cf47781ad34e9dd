//! Fine-tune AlexNet from conv4 on class folders (one sub-folder per class), print the
//! validation accuracy and save the model:
//!
//!     cargo run --release --example fine_tune -- WEIGHTS DATA_DIR OUT.npz

use alexnet_wgpu::{AlexNet, HeadKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, data, out] = args.as_slice() else {
        return Err("usage: fine_tune WEIGHTS DATA_DIR OUT.npz".into());
    };
    let net = AlexNet::from_file(weights)?;
    let trained = net
        .fine_tune()
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
