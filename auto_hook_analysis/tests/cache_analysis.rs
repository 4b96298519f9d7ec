//! Cache analysis, logit lens and direct logit attribution on the demo model, checked
//! against values computed by hand (plain loops over the weights and cached values).

use auto_hook::prelude::*;
use auto_hook_analysis::{logit_diff, token_ranks, CacheAnalysis, PosSlice};
use auto_hook_models::HookedTransformer;
use candle_core::{DType, Device, Tensor};

fn model() -> HookedTransformer {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/induction-2l");
    auto_hook_models::load(dir, DType::F32, &Device::Cpu).unwrap()
}

/// Two prompts `[BOS] a b c a b` (the induction heads predict `c` at the end).
fn tokens() -> Tensor {
    Tensor::new(
        &[[0u32, 5, 9, 17, 5, 9], [0, 33, 2, 40, 33, 2]],
        &Device::Cpu,
    )
    .unwrap()
}

fn answers() -> Tensor {
    Tensor::new(&[17u32, 40], &Device::Cpu).unwrap()
}

fn run(model: &HookedTransformer) -> (Tensor, ActivationCache) {
    model
        .run_with_cache(CacheOptions::all(), |m| m.forward(&tokens(), None))
        .unwrap()
}

fn vec1(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn close(a: f32, b: f32, what: &str) {
    assert!(
        (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
        "{what}: {a} vs {b}"
    );
}

/// `W_U` as rows `[d_model][d_vocab]`.
fn w_u(model: &HookedTransformer) -> Vec<Vec<f32>> {
    model.w_u().unwrap().to_vec2().unwrap()
}

/// The final LayerNorm's linear part by hand: `(x - mean) / scale * w`.
fn ln_linear(x: &[f32], scale: f32, w: &[f32]) -> Vec<f32> {
    let mean = x.iter().sum::<f32>() / x.len() as f32;
    x.iter()
        .zip(w)
        .map(|(v, w)| (v - mean) / scale * w)
        .collect()
}

fn dot_column(x: &[f32], w_u: &[Vec<f32>], token: usize) -> f32 {
    x.iter().zip(w_u).map(|(v, row)| v * row[token]).sum()
}

#[test]
fn accumulated_resid_lists_each_layers_input_and_the_final_stream() {
    let model = model();
    let (_, cache) = run(&model);
    let analysis = CacheAnalysis::new(&model, &cache);
    let all = analysis
        .accumulated_resid(None, true, PosSlice::All)
        .unwrap();
    assert_eq!(
        all.axis("component").unwrap().labels,
        ["0_pre", "0_mid", "1_pre", "1_mid", "final_post"]
    );
    assert_eq!(all.tensor().dims(), [5, 2, 6, 64]);
    let upto1 = analysis.accumulated_resid(Some(1), false, 2usize).unwrap();
    assert_eq!(upto1.axis("component").unwrap().labels, ["0_pre", "1_pre"]);
    let want = cache
        .get("blocks.1.hook_resid_pre")
        .unwrap()
        .narrow(1, 2, 1)
        .unwrap();
    assert_eq!(vec1(&upto1.tensor().get(1).unwrap()), vec1(&want));
    let err = analysis
        .accumulated_resid(Some(3), false, PosSlice::All)
        .unwrap_err();
    assert_eq!(err.to_string(), "layer 3 is out of range 0..3");
}

#[test]
fn decompose_resid_components_add_up_to_the_residual_stream() {
    let model = model();
    let (_, cache) = run(&model);
    let analysis = CacheAnalysis::new(&model, &cache);
    let parts = analysis.decompose_resid(None, PosSlice::All).unwrap();
    assert_eq!(
        parts.axis("component").unwrap().labels,
        [
            "embed",
            "pos_embed",
            "0_attn_out",
            "0_mlp_out",
            "1_attn_out",
            "1_mlp_out"
        ]
    );
    let sum = vec1(&parts.tensor().sum(0).unwrap());
    let resid = vec1(cache.get("blocks.1.hook_resid_post").unwrap());
    for (i, (a, b)) in sum.iter().zip(&resid).enumerate() {
        close(*a, *b, &format!("element {i}"));
    }
}

#[test]
fn head_results_are_z_times_w_o_and_add_up_to_attn_out_less_its_bias() {
    let model = model();
    let (_, cache) = run(&model);
    let analysis = CacheAnalysis::new(&model, &cache);
    let heads = analysis.stack_head_results(None, PosSlice::Last).unwrap();
    assert_eq!(heads.axis("component").unwrap().labels[5], "L1H1");
    assert_eq!(heads.tensor().dims(), [8, 2, 1, 64]);
    // L1H2, batch 1, last position, by hand.
    let z = cache.get("blocks.1.attn.hook_z").unwrap(); // [b, p, h, dh]
    let z: Vec<f32> = vec1(&z.get(1).unwrap().get(5).unwrap().get(2).unwrap());
    let w_o: Vec<Vec<f32>> = model.w_o(1).unwrap().get(2).unwrap().to_vec2().unwrap();
    let got = vec1(&heads.tensor().get(6).unwrap().get(1).unwrap());
    for j in 0..64 {
        let want: f32 = (0..z.len()).map(|k| z[k] * w_o[k][j]).sum();
        close(got[j], want, &format!("L1H2 d_model {j}"));
    }
    // Layer 0's four heads plus b_O are its attention output.
    let sum = heads.tensor().narrow(0, 0, 4).unwrap().sum(0).unwrap();
    let sum = vec1(&sum.broadcast_add(&model.b_o(0).unwrap()).unwrap());
    let attn_out = cache
        .get("blocks.0.hook_attn_out")
        .unwrap()
        .narrow(1, 5, 1)
        .unwrap();
    for (a, b) in sum.iter().zip(&vec1(&attn_out)) {
        close(*a, *b, "layer 0 heads + b_O");
    }
}

#[test]
fn direct_logit_attribution_of_a_head_matches_a_hand_computation() {
    let model = model();
    let (_, cache) = run(&model);
    let analysis = CacheAnalysis::new(&model, &cache);
    let heads = analysis.stack_head_results(None, -1i64).unwrap();
    let dla = analysis
        .direct_logit_attribution(&heads, -1i64, &answers(), None)
        .unwrap();
    assert_eq!(dla.tensor().dims(), [8, 2, 1]);
    let w = vec1(model.ln_final().weight());
    let w_u = w_u(&model);
    let scale = cache.get("ln_final.hook_scale").unwrap(); // [b, p, 1]
    for (batch, answer) in [(0usize, 17usize), (1, 40)] {
        let s = scale
            .get(batch)
            .unwrap()
            .get(5)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0];
        for (layer, head) in [(0usize, 3usize), (1, 1)] {
            let z = cache.get(&format!("blocks.{layer}.attn.hook_z")).unwrap();
            let z = vec1(&z.get(batch).unwrap().get(5).unwrap().get(head).unwrap());
            let w_o: Vec<Vec<f32>> = model
                .w_o(layer)
                .unwrap()
                .get(head)
                .unwrap()
                .to_vec2()
                .unwrap();
            let result: Vec<f32> = (0..64)
                .map(|j| (0..16).map(|k| z[k] * w_o[k][j]).sum())
                .collect();
            let want = dot_column(&ln_linear(&result, s, &w), &w_u, answer);
            let got = dla.value(&[layer * 4 + head, batch, 0]).unwrap();
            close(got, want, &format!("L{layer}H{head} batch {batch}"));
        }
    }
}

#[test]
fn component_attributions_plus_the_constant_term_are_the_logits() {
    let model = model();
    let (logits, cache) = run(&model);
    let analysis = CacheAnalysis::new(&model, &cache);
    let parts = analysis.decompose_resid(None, PosSlice::Last).unwrap();
    let other = Tensor::new(&[3u32, 4], &Device::Cpu).unwrap();
    let attrs = analysis
        .direct_logit_attribution(&parts, PosSlice::Last, &answers(), None)
        .unwrap();
    let diffs = analysis
        .direct_logit_attribution(&parts, PosSlice::Last, &answers(), Some(&other))
        .unwrap();
    let total = vec1(&attrs.tensor().sum(0).unwrap());
    let total_diff = vec1(&diffs.tensor().sum(0).unwrap());
    let b = vec1(model.ln_final().bias().unwrap());
    let b_u = vec1(&model.b_u().unwrap());
    let w_u = w_u(&model);
    let want_diff = vec1(&logit_diff(&logits, -1i64, &answers(), &other).unwrap());
    for (batch, answer, wrong) in [(0usize, 17usize, 3usize), (1, 40, 4)] {
        let logit = logits
            .get(batch)
            .unwrap()
            .get(5)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let constant = |t: usize| dot_column(&b, &w_u, t) + b_u[t];
        close(
            total[batch] + constant(answer),
            logit[answer],
            "sum of attributions",
        );
        close(want_diff[batch], logit[answer] - logit[wrong], "logit_diff");
        let constant_diff = constant(answer) - constant(wrong);
        close(
            total_diff[batch] + constant_diff,
            want_diff[batch],
            "attributed logit difference",
        );
    }
}

#[test]
fn logit_lens_rows_are_the_normed_stream_unembedded_and_end_at_the_logits() {
    let model = model();
    let (logits, cache) = run(&model);
    let analysis = CacheAnalysis::new(&model, &cache);
    let lens = analysis.logit_lens(PosSlice::Last).unwrap();
    assert_eq!(lens.tensor().dims(), [3, 2, 1, 64]);
    let last = vec1(&lens.tensor().get(2).unwrap());
    let want = vec1(&logits.narrow(1, 5, 1).unwrap());
    for (a, b) in last.iter().zip(&want) {
        close(*a, *b, "final row");
    }
    // Layer 1's input, batch 0, through a LayerNorm computed by hand.
    let x = vec1(
        &cache
            .get("blocks.1.hook_resid_pre")
            .unwrap()
            .get(0)
            .unwrap()
            .get(5)
            .unwrap(),
    );
    let mean = x.iter().sum::<f32>() / 64.0;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 64.0;
    let scale = (var + 1e-5).sqrt();
    let (w, b) = (
        vec1(model.ln_final().weight()),
        vec1(model.ln_final().bias().unwrap()),
    );
    let normed: Vec<f32> = ln_linear(&x, scale, &w)
        .iter()
        .zip(&b)
        .map(|(v, b)| v + b)
        .collect();
    let w_u = w_u(&model);
    let row = vec1(&lens.tensor().get(1).unwrap().get(0).unwrap());
    for token in [0usize, 17, 63] {
        close(
            row[token],
            dot_column(&normed, &w_u, token),
            &format!("token {token}"),
        );
    }
    // The induction answer is the model's top token at the end, not before layer 1.
    let ranks = token_ranks(lens.tensor(), &answers()).unwrap(); // [layer, batch, pos]
    let ranks: Vec<u32> = vec1(&ranks.to_dtype(DType::F32).unwrap())
        .iter()
        .map(|&r| r as u32)
        .collect();
    assert_eq!(&ranks[4..], [0, 0], "final ranks {ranks:?}");
    assert!(ranks[0] > 0 && ranks[1] > 0, "embedding ranks {ranks:?}");
}

#[test]
fn neuron_results_add_up_to_mlp_out_less_its_bias() {
    let model = model();
    let (_, cache) = run(&model);
    let analysis = CacheAnalysis::new(&model, &cache);
    let neurons = analysis
        .stack_neuron_results(Some(1), PosSlice::All)
        .unwrap();
    assert_eq!(
        neurons.axis("component").unwrap().labels,
        ["L0N0", "L0N1", "L0N2", "L0N3"]
    );
    let sum = neurons
        .tensor()
        .sum(0)
        .unwrap()
        .broadcast_add(&model.b_out(0).unwrap())
        .unwrap();
    let mlp_out = cache.get("blocks.0.hook_mlp_out").unwrap();
    for (a, b) in vec1(&sum).iter().zip(&vec1(mlp_out)) {
        close(*a, *b, "neurons + b_out");
    }
}

#[test]
fn a_stack_made_with_another_pos_slice_is_a_clear_error() {
    let model = model();
    let (_, cache) = run(&model);
    let analysis = CacheAnalysis::new(&model, &cache);
    let all = analysis.decompose_resid(None, PosSlice::All).unwrap();
    let err = analysis
        .apply_ln_to_stack(&all, PosSlice::Last)
        .unwrap_err()
        .to_string();
    assert!(err.contains("same pos slice"), "{err}");
    let err = analysis
        .decompose_resid(None, 9usize)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "position 9 is out of range 0..6");
}
