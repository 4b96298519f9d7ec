//! A feature dashboard: the top-activating contexts of chosen latents, collected over
//! batches of SAE activations, and written as one small self-contained static HTML page
//! (inline CSS and SVG, no scripts), with a feature-density histogram as SVG.

mod svg;

pub use svg::density_histogram_svg;

use crate::error::{Error, Result};
use candle_core::{DType, Tensor};

/// Where a latent fired strongly: its value at one position of one sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopActivation {
    /// The latent's activation.
    pub value: f32,
    /// Index of the sequence (as numbered by the caller of [`TopActivations::add`]).
    pub sequence: usize,
    /// Position in the sequence.
    pub position: usize,
}

/// The strongest activations of a few latents, at most one per sequence (its strongest
/// position), over as many batches as are added.
///
/// ```
/// use auto_hook_sae::TopActivations;
/// use candle_core::{Device, Tensor};
/// let mut top = TopActivations::new(vec![1], 2);
/// // 3 sequences of 2 positions, 2 latents; latent 1 fires at (0, 1), (2, 0) and (2, 1).
/// let acts = Tensor::new(&[[[0f32, 0.0], [0.0, 0.5]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 2.0], [0.0, 1.0]]], &Device::Cpu)?;
/// top.add(&acts, 10)?;
/// let best: Vec<_> = top.top(0).iter().map(|a| (a.sequence, a.position, a.value)).collect();
/// assert_eq!(best, [(12, 0, 2.0), (10, 1, 0.5)]);
/// # Ok::<(), auto_hook_sae::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TopActivations {
    latents: Vec<usize>,
    per_latent: usize,
    best: Vec<Vec<TopActivation>>,
}

impl TopActivations {
    /// Keeps the `per_latent` strongest sequences of each of `latents`.
    pub fn new(latents: Vec<usize>, per_latent: usize) -> Self {
        let best = vec![Vec::new(); latents.len()];
        Self {
            latents,
            per_latent,
            best,
        }
    }

    /// The latents followed.
    pub fn latents(&self) -> &[usize] {
        &self.latents
    }

    /// Adds SAE activations `[batch, pos, d_sae]` of the sequences numbered
    /// `first_sequence..first_sequence + batch`. Zero activations never count.
    pub fn add(&mut self, acts: &Tensor, first_sequence: usize) -> Result<()> {
        let (_, _, d_sae) = acts.dims3().map_err(|_| Error::Shape {
            what: "SAE activations".into(),
            problem: format!("expected [batch, pos, d_sae], got {:?}", acts.dims()),
        })?;
        if let Some(&bad) = self.latents.iter().find(|&&l| l >= d_sae) {
            return Err(Error::Invalid(format!(
                "latent {bad} asked, the SAE has {d_sae} latents"
            )));
        }
        let ids: Vec<u32> = self.latents.iter().map(|&l| l as u32).collect();
        let ids = Tensor::new(ids, acts.device())?;
        let picked = acts.index_select(&ids, 2)?.to_dtype(DType::F32)?;
        let picked = picked.to_vec3::<f32>()?; // [batch, pos, latents]
        for (j, best) in self.best.iter_mut().enumerate() {
            for (b, seq) in picked.iter().enumerate() {
                let strongest = seq
                    .iter()
                    .enumerate()
                    .map(|(p, v)| (p, v[j]))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                if let Some((position, value)) = strongest.filter(|(_, v)| *v > 0.0) {
                    best.push(TopActivation {
                        value,
                        sequence: first_sequence + b,
                        position,
                    });
                }
            }
            best.sort_by(|a, b| b.value.total_cmp(&a.value));
            best.truncate(self.per_latent);
        }
        Ok(())
    }

    /// The strongest activations of the `i`-th latent followed, strongest first.
    pub fn top(&self, i: usize) -> &[TopActivation] {
        &self.best[i]
    }
}

/// A few tokens around one position, with the latent's value at each.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// The tokens as text.
    pub tokens: Vec<String>,
    /// The latent's activation at each token.
    pub values: Vec<f32>,
    /// Index (in `tokens`) of the token the context is about.
    pub focus: usize,
}

impl Context {
    /// The window of `before` tokens, the token at `position`, and `after` tokens (cut
    /// at the ends of the sequence; a position past the end means the last token).
    ///
    /// ```
    /// let tokens: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    /// let c = auto_hook_sae::Context::around(&tokens, &[0.0, 1.0, 3.0, 0.0], 2, 1, 5);
    /// assert_eq!((c.tokens, c.values, c.focus), (vec!["b".to_string(), "c".into(), "d".into()], vec![1.0, 3.0, 0.0], 1));
    /// ```
    pub fn around(
        tokens: &[String],
        values: &[f32],
        position: usize,
        before: usize,
        after: usize,
    ) -> Self {
        let len = tokens.len().min(values.len());
        let position = position.min(len.saturating_sub(1));
        let start = position.saturating_sub(before);
        let end = (position + after + 1).min(len);
        Self {
            tokens: tokens[start..end].to_vec(),
            values: values[start..end].to_vec(),
            focus: position - start,
        }
    }

    /// The value at the focus token (0 for an empty context).
    pub fn focus_value(&self) -> f32 {
        self.values.get(self.focus).copied().unwrap_or(0.0)
    }
}

/// One latent's card: its statistics, top contexts and, optionally, the tokens its
/// decoder direction promotes most (through the model's unembedding).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureCard {
    /// The latent's index.
    pub latent: usize,
    /// Fraction of tokens it fires on.
    pub density: f64,
    /// Its top contexts, strongest first.
    pub contexts: Vec<Context>,
    /// Tokens it promotes most, with their logit (may be empty).
    pub top_logits: Vec<(String, f32)>,
}

/// A whole dashboard page.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    /// Page title.
    pub title: String,
    /// A paragraph under the title (plain text).
    pub intro: String,
    /// Name / value rows of the summary table.
    pub summary: Vec<(String, String)>,
    /// SVG figures (as written by [`density_histogram_svg`]), placed inline.
    pub figures: Vec<String>,
    /// The latents shown.
    pub features: Vec<FeatureCard>,
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
///
/// ```
/// assert_eq!(auto_hook_sae::escape_html("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
/// ```
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;\
padding:0 1rem;color:#222}table.summary td{padding:0 1rem 0 0}\
.card{border:1px solid #ccc;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}\
.ctx{font-family:ui-monospace,monospace;font-size:.85rem;white-space:pre-wrap;\
margin:.2rem 0;line-height:1.5}.ctx span{border-radius:2px}\
.ctx .focus{outline:2px solid #c60;font-weight:bold}.val{color:#777;font-size:.75rem}\
.logits{font-size:.85rem;color:#444}";

impl Dashboard {
    /// The page as one self-contained HTML document (no scripts, no external files).
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        h.push_str(&format!("<title>{}</title>\n", escape_html(&self.title)));
        h.push_str(&format!("<style>{STYLE}</style>\n</head>\n<body>\n"));
        h.push_str(&format!("<h1>{}</h1>\n", escape_html(&self.title)));
        h.push_str(&format!("<p>{}</p>\n", escape_html(&self.intro)));
        h.push_str("<table class=\"summary\">\n");
        for (name, value) in &self.summary {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>\n",
                escape_html(name),
                escape_html(value)
            ));
        }
        h.push_str("</table>\n");
        for figure in &self.figures {
            h.push_str(&format!("<figure>{figure}</figure>\n"));
        }
        for card in &self.features {
            card_html(card, &mut h);
        }
        h.push_str("</body>\n</html>\n");
        h
    }
}

fn card_html(card: &FeatureCard, h: &mut String) {
    h.push_str(&format!(
        "<div class=\"card\" id=\"latent-{0}\">\n<h2>Latent {0}</h2>\n",
        card.latent
    ));
    h.push_str(&format!(
        "<p>fires on {:.3}% of tokens; top activation {:.2}</p>\n",
        card.density * 100.0,
        card.contexts.first().map_or(0.0, Context::focus_value)
    ));
    if !card.top_logits.is_empty() {
        let list: Vec<String> = card
            .top_logits
            .iter()
            .map(|(t, v)| format!("<code>{}</code> {v:.2}", escape_html(&visible(t))))
            .collect();
        h.push_str(&format!(
            "<p class=\"logits\">promotes: {}</p>\n",
            list.join(", ")
        ));
    }
    let max = card
        .contexts
        .iter()
        .flat_map(|c| c.values.iter().copied())
        .fold(0f32, f32::max)
        .max(f32::MIN_POSITIVE);
    for ctx in &card.contexts {
        h.push_str("<div class=\"ctx\">");
        for (i, (tok, &v)) in ctx.tokens.iter().zip(&ctx.values).enumerate() {
            let alpha = (v / max).clamp(0.0, 1.0);
            let class = if i == ctx.focus {
                " class=\"focus\""
            } else {
                ""
            };
            h.push_str(&format!(
                "<span{class} style=\"background:rgba(255,140,0,{alpha:.2})\" title=\"{v:.3}\">{}</span>",
                escape_html(&visible(tok))
            ));
        }
        h.push_str(&format!(
            " <span class=\"val\">{:.2}</span></div>\n",
            ctx.focus_value()
        ));
    }
    h.push_str("</div>\n");
}

/// Line breaks and tabs shown as symbols, so each context stays on one line.
fn visible(token: &str) -> String {
    token.replace('\n', "↵").replace('\t', "→")
}
