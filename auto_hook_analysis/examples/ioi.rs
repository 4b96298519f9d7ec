//! Indirect object identification (Wang et al. 2022): the mean logit difference IO − S
//! on templated prompts, the per-head patching heatmap (clean heads patched into runs
//! on prompts with other names), and the name-mover candidates (heads at the last
//! position that attend to the IO name and write its logit). Writes
//! `ioi_head_patching.{png,svg}`.
//!
//! cargo run --release -p auto_hook_analysis --example ioi [MODEL]

mod common;

use auto_hook::prelude::*;
use auto_hook_analysis::{
    logit_diff, Axis, CacheAnalysis, Heatmap, Labelled, Metric, Patching, PosSlice,
};
use candle_core::{Device, Tensor};
use common::Res;

const NAMES: [&str; 12] = [
    " Mary", " John", " Tom", " James", " Anna", " David", " Sarah", " Michael", " Lisa", " Paul",
    " Emma", " Mark",
];
const PLACES: [(&str, &str); 3] = [
    (" store", " drink"),
    (" park", " ball"),
    (" school", " book"),
];
/// Prompts in the patching sweep (its 270 cells each run this batch once).
const PATCH_BATCH: usize = 8;

struct Prompt {
    ids: Vec<u32>,
    io: u32,
    s: u32,
    io_pos: usize,
}

/// "When A and B went to the P, B gave a O to" (ABBA) and "When B and A ..." (BABA).
fn prompts(
    tok: &auto_hook_models::Text,
    names: &[(String, u32)],
    shift: usize,
) -> Res<Vec<Prompt>> {
    let mut out = Vec::new();
    for (i, (a, a_id)) in names.iter().enumerate() {
        for (j, (b, b_id)) in names.iter().enumerate() {
            if i == j || (i + j + shift) % 2 == 1 {
                continue;
            }
            let (place, object) = PLACES[(i + 2 * j + shift) % PLACES.len()];
            let abba = (i + shift).is_multiple_of(2);
            let (first, second) = if abba { (a, b) } else { (b, a) };
            let text = format!("When{first} and{second} went to the{place},{b} gave a{object} to");
            let ids = common::encode(tok, &text)?;
            let io_pos = if abba { 1 } else { 3 };
            out.push(Prompt {
                ids,
                io: *a_id,
                s: *b_id,
                io_pos,
            });
        }
    }
    Ok(out)
}

fn batch(prompts: &[Prompt]) -> Res<(Tensor, Tensor, Tensor)> {
    let len = prompts[0].ids.len();
    if prompts.iter().any(|p| p.ids.len() != len) {
        return Err("the prompts tokenize to different lengths".into());
    }
    let ids: Vec<u32> = prompts.iter().flat_map(|p| p.ids.clone()).collect();
    let dev = Device::Cpu;
    let ids = Tensor::from_vec(ids, (prompts.len(), len), &dev)?;
    let io = Tensor::new(prompts.iter().map(|p| p.io).collect::<Vec<_>>(), &dev)?;
    let s = Tensor::new(prompts.iter().map(|p| p.s).collect::<Vec<_>>(), &dev)?;
    Ok((ids, io, s))
}

fn main() -> Res<()> {
    let (model, _) = common::load()?;
    let tok = common::text(&model)?;
    let started = std::time::Instant::now();
    let mut names = Vec::new();
    for name in NAMES {
        if let Some(id) = common::single_token(tok, name)? {
            names.push((name.to_owned(), id));
        }
    }
    let all = prompts(tok, &names, 0)?;
    let len = all[0].ids.len();
    let all: Vec<Prompt> = all.into_iter().filter(|p| p.ids.len() == len).collect();
    let (ids, io, s) = batch(&all)?;
    let logits = model.forward(&ids, None)?;
    let diffs: Vec<f32> = logit_diff(&logits, -1i64, &io, &s)?.to_vec1()?;
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    let right = diffs.iter().filter(|&&d| d > 0.0).count();
    println!("{} prompts ({} single-token names): mean logit difference IO - S {mean:.3}; IO above S in {right}", diffs.len(), names.len());
    println!("  e.g. {:?}", tok.decode(&all[0].ids).unwrap_or_default());

    // Patching: the first PATCH_BATCH prompts, corrupted by other names (a shifted pairing).
    let clean = &all[..PATCH_BATCH.min(all.len())];
    let (clean_ids, clean_io, clean_s) = batch(clean)?;
    let mut other: Vec<Prompt> = Vec::new();
    for p in clean {
        let (io2, s2) = names
            .iter()
            .map(|n| n.1)
            .filter(|&n| n != p.io && n != p.s)
            .fold((None, None), |(a, b), n| match (a, b) {
                (None, _) => (Some(n), None),
                (Some(a), None) => (Some(a), Some(n)),
                done => done,
            });
        let (io2, s2) = (io2.ok_or("too few names")?, s2.ok_or("too few names")?);
        let ids: Vec<u32> = p
            .ids
            .iter()
            .map(|&t| {
                if t == p.io {
                    io2
                } else if t == p.s {
                    s2
                } else {
                    t
                }
            })
            .collect();
        other.push(Prompt {
            ids,
            io: io2,
            s: s2,
            io_pos: p.io_pos,
        });
    }
    let (corrupt_ids, _, _) = batch(&other)?;
    let (clean_logits, cache) =
        model.run_with_cache(CacheOptions::all(), |m| m.forward(&clean_ids, None))?;
    let metric_of = |l: &Tensor| -> candle_core::Result<f32> {
        logit_diff(l, -1i64, &clean_io, &clean_s)
            .map_err(candle_core::Error::from)?
            .mean_all()?
            .to_scalar::<f32>()
    };
    let clean_diff = metric_of(&clean_logits)?;
    let corrupt_diff = metric_of(&model.forward(&corrupt_ids, None)?)?;
    println!("patching batch: clean IO - S {clean_diff:.3}, with other names {corrupt_diff:.3}");
    let metric =
        Metric::logits(move |l| Ok((metric_of(l)? - corrupt_diff) / (clean_diff - corrupt_diff)));
    let grid = Patching::new(&model, &corrupt_ids, &cache, metric).heads_all_pos()?;
    println!("heads whose clean output restores most of the IO - S difference (1 = all):");
    for (labels, v) in grid.top(8)? {
        println!("  L{}H{}: {v:.3}", labels[0], labels[1]);
    }

    // Name movers: direct effect on IO - S at the last position, and attention to IO.
    let analysis = CacheAnalysis::new(&model, &cache);
    let heads = analysis.stack_head_results(None, PosSlice::Last)?;
    let dla =
        analysis.direct_logit_attribution(&heads, PosSlice::Last, &clean_io, Some(&clean_s))?;
    let (n_layers, n_heads) = (model.config().n_layers, model.config().n_heads);
    let per_head = dla.tensor().mean(1)?.reshape((n_layers, n_heads))?;
    let dla = Labelled::new(
        per_head,
        vec![
            Axis::indices("layer", n_layers),
            Axis::indices("head", n_heads),
        ],
    )?;
    println!("name-mover candidates (direct logit attribution to IO - S; attention last -> IO):");
    for (labels, v) in dla.top(6)? {
        let (l, h): (usize, usize) = (labels[0].parse()?, labels[1].parse()?);
        let pattern = cache.get(&format!("blocks.{l}.attn.hook_pattern"))?;
        let mut attn = 0.0;
        for (b, p) in clean.iter().enumerate() {
            attn += pattern
                .get(b)?
                .get(h)?
                .get(len - 1)?
                .get(p.io_pos)?
                .to_scalar::<f32>()?
                / clean.len() as f32;
        }
        println!(
            "  L{l}H{h}: DLA {v:.3}, attention to IO {attn:.2}, patching {:.3}",
            grid.value(&[l, h])?
        );
    }
    let dir = common::figures()?;
    for ext in ["png", "svg"] {
        Heatmap::from_labelled(&grid, "IOI: share of IO - S restored by patching each head")?
            .write(dir.join(format!("ioi_head_patching.{ext}")))?;
    }
    println!(
        "figures in {}; {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f32()
    );
    Ok(())
}
