//! Issue 31's one route: with a tuner table that sends every convolution and every tunable
//! dense part to a variant other than the adapter's default, the library (`AlexNet`, reading
//! the table from the cache file it is given), the binary (`alexnet classify --timings`,
//! reading the same file from its cache folder) and training's forward pass (`ConvStack`,
//! `--train-from conv1`) run that variant for every layer.

use std::collections::BTreeMap;
use std::process::Command;

use crate::common::{self, ctx, fixture};
use alexnet_wgpu::kernels::mm::{ConvKind, DenseKind, Tile};
use alexnet_wgpu::kernels::route::ConvRoute;
use alexnet_wgpu::kernels::tuned::{self, Variant};
use alexnet_wgpu::kernels::{dense::DenseRoute, Kernels, Precision};
use alexnet_wgpu::model::tune::{self, CacheFile};
use alexnet_wgpu::model::{Layer, Weights};
use alexnet_wgpu::train::head::{conv_hosts, ConvPart};
use alexnet_wgpu::train::{conv_stack::ConvStack, Optimizer};
use alexnet_wgpu::AlexNet;

const BATCH: usize = 2;

/// The conv labels each route's dispatches carry.
fn conv_labels(route: ConvRoute) -> Vec<String> {
    match route {
        ConvRoute::Im2col(_) => vec!["conv2d(gemm)".into()],
        ConvRoute::Mm(t) => vec![format!("conv2d(mm {})", t.name())],
        ConvRoute::MmSplit { tile, split } => vec![
            format!("conv2d(mm {}-split{split})", tile.name()),
            "conv2d(mm split-K reduce)".into(),
        ],
        ConvRoute::MmIm2col(t) => vec![
            "conv2d(im2col coalesced)".into(),
            format!("conv2d(mm {}-im2col)", t.name()),
        ],
        ConvRoute::Direct => vec!["conv2d".into()],
        ConvRoute::Coop(c, _) => vec![
            format!("conv2d({} im2col)", c.name()),
            format!("conv2d({})", c.name()),
        ],
    }
}

#[test]
fn library_binary_and_training_run_the_tuned_variant_of_every_layer() {
    let ctx = ctx();
    let weights_path = fixture("torchvision_small.npz");
    let w = Weights::load(&weights_path, None).unwrap();
    let spec = w.spec();
    let infos = spec.infer().unwrap();
    // Every layer's default route (no table), and a table that picks another variant.
    let plain = Kernels::with_tuned(&ctx, ctx.matmul_path(), None);
    // Split over K: its partial sums need the scratch that each caller sizes from the route.
    let other_tile = ConvKind::implicit(Tile::new(64, 64, 16), 2);
    let adapter = tune::adapter_key(&ctx.info);
    let mut entries = BTreeMap::new();
    let mut want_conv = Vec::new();
    let mut want_dense = Vec::new();
    for (layer, info) in spec.layers.iter().zip(&infos) {
        if let Some(s) = layer.conv_shape(BATCH, info.input.as_map()) {
            let default = plain.conv_route(&s, Precision::F32).unwrap();
            let pick = match default {
                ConvRoute::Im2col(_) => Variant::Mm(other_tile),
                _ => Variant::Gemm,
            };
            want_conv.extend(conv_labels(ConvRoute::from(pick)));
            assert_ne!(
                ConvRoute::from(pick),
                default,
                "the table must change the route"
            );
            let key = tune::entry_key(&adapter, Precision::F32, &tuned::conv_key(&s));
            entries.insert(key, pick.name());
        } else if matches!(layer, Layer::Dense { .. }) {
            let (k, rows) = (info.input.len(), info.output.len());
            if !k.is_multiple_of(4) {
                continue;
            }
            let default = plain.dense_route(BATCH, k, rows).unwrap();
            let pick = match default {
                DenseRoute::Mm(_) => Variant::Gemm,
                _ => Variant::Mm(DenseKind::Gemv),
            };
            want_dense.push(match pick {
                Variant::Gemm => "dense(gemm)".to_string(),
                Variant::Mm(_) => "dense(mm gemv)".to_string(),
            });
            let key = tune::entry_key(&adapter, Precision::F32, &tuned::dense_key(BATCH, k, rows));
            entries.insert(key, pick.name());
        }
    }
    assert_eq!(
        (
            want_conv.iter().filter(|l| !l.contains("reduce")).count(),
            want_dense.len()
        ),
        (5, 2),
        "torchvision_small's layers"
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join(tune::FILE);
    let file = CacheFile {
        version: tune::VERSION,
        candidates: tune::candidates_id(),
        entries,
    };
    tune::write(&cache, &file).unwrap();

    // The library, reading the file through its builder.
    let choice = common::env_choice();
    let mut builder = AlexNet::builder()
        .weights(&weights_path)
        .options(common::env_options())
        .tuner_cache(&cache);
    if let Some(b) = choice.backend {
        builder = builder.backend(b);
    }
    if let Some(a) = choice.adapter {
        builder = builder.adapter(a);
    }
    let net = builder.build().unwrap();
    let lib: Vec<String> = net
        .kernel_plan(BATCH)
        .unwrap()
        .into_iter()
        .flat_map(|(_, ks)| ks)
        .collect();
    let convs = |labels: &[String]| -> Vec<String> {
        labels
            .iter()
            .filter(|l| l.starts_with("conv2d"))
            .cloned()
            .collect()
    };
    assert_eq!(convs(&lib), want_conv, "library: {lib:?}");
    for want in &want_dense {
        assert!(lib.contains(want), "library lacks {want}: {lib:?}");
    }

    // The binary, reading the same file from its cache folder.
    let o = Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(["--cache-dir"])
        .arg(dir.path())
        .args([
            "classify",
            "--timings",
            "--batch",
            &BATCH.to_string(),
            "--weights",
        ])
        .arg(&weights_path)
        .arg(common::root().join("assets/images"))
        .output()
        .unwrap();
    let err = common::stderr(&o);
    assert!(o.status.success(), "{err}");
    let cli: Vec<String> = err
        .lines()
        .filter_map(|l| l.strip_prefix("kernels: "))
        .flat_map(|l| {
            let (_, ks) = l.rsplit_once(": ").expect("layer: kernels");
            ks.split(", ").map(str::to_string).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(cli, lib, "the binary's kernels vs the library's:\n{err}");

    // Training from conv1 on a context holding the same table.
    let train_ctx = common::ctx();
    tune::load_into(&train_ctx, &cache);
    let (_, layers, input) = ConvPart::split(&w, "conv1").unwrap();
    let conv_layers: Vec<Layer> = layers
        .into_iter()
        .take_while(|l| !matches!(l, Layer::Flatten))
        .collect();
    let hosts = conv_hosts(&w, &conv_layers, input).unwrap();
    let sgd = Optimizer::Sgd { momentum: 0.9 };
    let stack = ConvStack::new(&train_ctx, &conv_layers, input, &hosts, BATCH, Some(sgd)).unwrap();
    let labels: Vec<String> = stack
        .forward(&train_ctx, BATCH)
        .unwrap()
        .into_iter()
        .map(|d| d.label)
        .collect();
    assert_eq!(convs(&labels), want_conv, "training: {labels:?}");
}
