//! Using lesioneval as a library: score one prediction against its ground truth.
//!
//! `cargo run --example score_case -- GT.nii.gz PRED.nii.gz`

use lesioneval::eval::{self, EvalConfig, Timings};
use lesioneval::matching::Assignment;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (gt_path, pred_path) = match args.as_slice() {
        [_, g, p] => (g.clone(), p.clone()),
        _ => {
            let root = env!("CARGO_MANIFEST_DIR");
            (
                format!("{root}/fixtures/sct/t2_seg-deepseg_rootlets-manual.nii.gz"),
                format!("{root}/fixtures/sct/t2_seg-deepseg_rootlets.nii.gz"),
            )
        }
    };
    let config = EvalConfig {
        assignment: Assignment::OneToOne,
        criterion: "iou:0.1".parse()?,
        ..EvalConfig::default()
    };
    let t = Timings::default();
    let gt = eval::read_and_label(gt_path.as_ref(), config.connectivity, config.min_size_gt, &t)?;
    let pred = eval::read_and_label(pred_path.as_ref(), config.connectivity, config.min_size_pred, &t)?;
    if let Some(diff) = gt.geometry.mismatch(&pred.geometry, config.geometry_tolerance) {
        return Err(format!("geometry differs: {diff}").into());
    }
    let r = eval::score_case("case", &gt, &pred, &config, false);
    let k = &r.counts;
    println!("GT {} Pred {} TP {} FP {} FN {}", k.gt, k.pred, k.tp, k.fp, k.fn_);
    println!(
        "F1 {:.4}  voxel Dice {:.4}",
        r.rates.f1.unwrap_or(f64::NAN),
        r.rates.dice.unwrap_or(f64::NAN)
    );
    for l in r.lesions.iter().filter(|l| l.side == "pred") {
        println!(
            "pred lesion {:>2}: {:>4} voxels, {:?}, best IoU {:.3}",
            l.id, l.voxels, l.status, l.best_iou
        );
    }
    Ok(())
}
