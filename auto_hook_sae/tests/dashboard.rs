//! The feature dashboard: top activations, escaped and well-formed HTML, the histogram.

use auto_hook_sae::{density_histogram_svg, Context, Dashboard, FeatureCard, TopActivations};
use candle_core::{Device, Tensor};

const VOID: [&str; 4] = ["meta", "br", "img", "hr"];

/// Checks that every tag of `doc` is closed in order (void elements and `<x/>` aside), that
/// no `<`, `>` or stray `&` appears in text, and returns the tag names opened.
fn check_well_formed(doc: &str) -> Vec<String> {
    let doc = doc
        .strip_prefix("<!DOCTYPE html>\n")
        .expect("doctype first");
    let mut stack: Vec<String> = Vec::new();
    let mut opened = Vec::new();
    let mut rest = doc;
    while let Some(lt) = rest.find('<') {
        check_text(&rest[..lt]);
        let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
        let tag = &rest[lt + 1..gt];
        assert!(!tag.contains('<'), "`<` inside a tag: {tag}");
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if let Some(closing) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(closing),
                "misnested </{closing}>"
            );
        } else if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
            if name == "style" || name == "title" {
                // Raw text elements: their content must not close them early.
                let end = rest[gt..].find(&format!("</{name}>")).expect("closed") + gt;
                check_text(&rest[gt + 1..end]);
                rest = &rest[end + name.len() + 3..];
                opened.push(name);
                continue;
            }
            stack.push(name.clone());
        }
        opened.push(name);
        rest = &rest[gt + 1..];
    }
    check_text(rest);
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    opened
}

fn check_text(text: &str) {
    assert!(!text.contains('>'), "raw `>` in text: {text:?}");
    for (i, _) in text.match_indices('&') {
        let entity = &text[i..text[i..].find(';').map_or(text.len(), |j| i + j + 1)];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"].contains(&entity),
            "stray `&` in text: {text:?}"
        );
    }
}

fn dashboard() -> Dashboard {
    let tokens: Vec<String> = ["<script>", "alert(\"x\")", " & ", "'q'", "\n", "</div>"]
        .map(String::from)
        .to_vec();
    let values = [0.0, 0.5, 2.0, 0.0, 1.0, 0.0];
    Dashboard {
        title: "SAE <on> \"a\" & b".into(),
        intro: "latents & contexts < > 'quoted'".into(),
        summary: vec![("explained variance".into(), "0.9 <ok>".into())],
        figures: vec![density_histogram_svg(
            &[0.0, 0.0, 1e-4, 3e-3, 0.2],
            "density & <x>",
        )],
        features: vec![FeatureCard {
            latent: 7,
            density: 0.0123,
            contexts: vec![
                Context::around(&tokens, &values, 2, 2, 3),
                Context::around(&tokens, &values, 4, 10, 10),
            ],
            top_logits: vec![("<eos>".into(), 3.5), (" &amp;".into(), 2.0)],
        }],
    }
}

#[test]
fn the_dashboard_is_well_formed_html_with_every_text_escaped() {
    let html = dashboard().to_html();
    let tags = check_well_formed(&html);
    for tag in [
        "html", "head", "body", "table", "figure", "svg", "rect", "div", "span",
    ] {
        assert!(tags.iter().any(|t| t == tag), "no <{tag}>");
    }
    assert!(
        !tags.iter().any(|t| t == "script" || t == "link"),
        "self-contained, no scripts"
    );
    assert!(html.contains("&lt;script&gt;") && html.contains("alert(&quot;x&quot;)"));
    assert!(
        html.contains(" &amp; ") && html.contains("&#39;q&#39;") && html.contains("&lt;/div&gt;")
    );
    assert!(html.contains("&lt;eos&gt;") && html.contains(" &amp;amp;"));
    assert!(html.contains("<title>SAE &lt;on&gt; &quot;a&quot; &amp; b</title>"));
    assert!(html.contains("density &amp; &lt;x&gt;"));
    // The focus token is marked; a line break shows as a symbol, not a new line.
    assert!(html.contains(
        "class=\"focus\" style=\"background:rgba(255,140,0,1.00)\" title=\"2.000\"> &amp; </span>"
    ));
    assert!(html.contains(">↵</span>"));
    assert!(html.contains("fires on 1.230% of tokens; top activation 2.00"));
}

#[test]
fn the_histogram_counts_every_latent_once() {
    let density = [0.0, 0.0, 0.0, 1.1e-5, 1.5e-5, 0.011, 0.012, 0.5, 1.0];
    let svg = density_histogram_svg(&density, "h");
    check_well_formed(&format!("<!DOCTYPE html>\n{svg}"));
    assert!(svg.contains("never: 3"));
    let counts: usize = svg
        .split("<title>")
        .skip(1)
        .map(|t| {
            let t = &t[..t.find("</title>").unwrap()];
            let n = t.strip_prefix("never fired: ").unwrap_or(t);
            n.split(' ').next().unwrap().parse::<usize>().unwrap()
        })
        .sum();
    // 3 never (counted in its bar) + 6 in the frequency bins.
    assert_eq!(counts, 9);
    assert!(svg.contains(">1e-5</text>") && svg.contains(">1e0</text>"));
    assert!(svg.contains("<title>2 latents at 10^-5.0 to 10^-4.8</title>"));
}

#[test]
fn top_activations_keep_the_strongest_sequences() {
    let mut top = TopActivations::new(vec![0, 2], 2);
    // [batch 2, pos 3, d_sae 3]
    let a = Tensor::new(
        &[
            [[1f32, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
            [[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 9.0, 0.0]],
        ],
        &Device::Cpu,
    )
    .unwrap();
    top.add(&a, 0).unwrap();
    let b = Tensor::new(
        &[[[2.5f32, 0.0, 0.0], [0.0, 0.0, 4.0], [0.0, 0.0, 0.0]]],
        &Device::Cpu,
    )
    .unwrap();
    top.add(&b, 2).unwrap();
    let got = |i: usize| -> Vec<(usize, usize, f32)> {
        top.top(i)
            .iter()
            .map(|t| (t.sequence, t.position, t.value))
            .collect()
    };
    assert_eq!(got(0), [(0, 1, 3.0), (2, 0, 2.5)]);
    assert_eq!(
        got(1),
        [(2, 1, 4.0)],
        "latent 2 fired once; latent 1 is not followed"
    );
    let err = TopActivations::new(vec![3], 1)
        .add(&a, 0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("latent 3 asked, the SAE has 3 latents"),
        "{err}"
    );
    let err = top.add(
        &Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
        0,
    );
    assert!(err.unwrap_err().to_string().contains("[batch, pos, d_sae]"));
}
