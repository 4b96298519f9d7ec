//! Text in and out of a model: its tokenizer, chat template and special tokens, and
//! TransformerLens's `to_tokens` / `to_string` / `to_str_tokens` / `to_single_token`.

use crate::error::{Error, Result};
use crate::transformer::HookedTransformer;
use candle_core::{Device, Tensor};
use std::sync::Arc;

/// A model's tokenizer with what goes with it: the chat template and the special tokens.
#[derive(Clone)]
pub struct Text {
    tokenizer: Arc<tokenizers::Tokenizer>,
    chat_template: Option<String>,
    bos: Option<String>,
    eos: Option<String>,
    pad_id: Option<u32>,
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Text")
            .field("vocab_size", &self.tokenizer.get_vocab_size(true))
            .field("chat_template", &self.chat_template.is_some())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

/// One message of a chat, for [`HookedTransformer::apply_chat_template`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    /// A message from `role`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

impl Text {
    /// Wraps a tokenizer (no chat template, no special tokens named).
    pub fn new(tokenizer: tokenizers::Tokenizer) -> Self {
        Self {
            tokenizer: Arc::new(tokenizer),
            chat_template: None,
            bos: None,
            eos: None,
            pad_id: None,
        }
    }

    /// With a Jinja chat template (Hugging Face's `chat_template`).
    pub fn with_chat_template(mut self, template: Option<String>) -> Self {
        self.chat_template = template;
        self
    }

    /// With the BOS / EOS token strings (for the chat template) and the padding id.
    pub fn with_special_tokens(
        mut self,
        bos: Option<String>,
        eos: Option<String>,
        pad_id: Option<u32>,
    ) -> Self {
        self.bos = bos;
        self.eos = eos;
        self.pad_id = pad_id;
        self
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &tokenizers::Tokenizer {
        &self.tokenizer
    }

    /// The chat template, if the checkpoint has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// Token ids of `text`, with the special tokens the tokenizer adds (a BOS where the
    /// checkpoint asks for one); special tokens written in the text are matched whole.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, add_special_tokens)
            .map_err(|e| Error::Tokenizer(format!("cannot tokenize {text:?}: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids` (special tokens kept, as TransformerLens's `to_string`).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| Error::Tokenizer(format!("cannot decode {ids:?}: {e}")))
    }

    /// Renders `messages` with the chat template (Jinja, as transformers does).
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .chat_template
            .as_deref()
            .ok_or_else(|| Error::Tokenizer("this checkpoint has no chat template".into()))?;
        let mut env = minijinja::Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template("chat", template)
            .map_err(|e| Error::Tokenizer(format!("the chat template does not parse: {e}")))?;
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos.clone().unwrap_or_default(),
            eos_token => self.eos.clone().unwrap_or_default(),
        };
        env.get_template("chat")
            .and_then(|t| t.render(ctx))
            .map_err(|e| Error::Tokenizer(format!("the chat template fails: {e}")))
    }
}

/// TransformerLens's text helpers, on a model that has a tokenizer (loaded from a GGUF
/// file or a folder with `tokenizer.json`, or given with [`HookedTransformer::set_text`]).
impl HookedTransformer {
    /// The model's tokenizer, chat template and special tokens, if it has them.
    pub fn text(&self) -> Option<&Text> {
        self.text_ref()
    }

    fn need_text(&self) -> Result<&Text> {
        self.text().ok_or_else(|| {
            Error::Tokenizer(
                "this model has no tokenizer: load a GGUF file or a folder with tokenizer.json, \
                 or give one with set_text"
                    .into(),
            )
        })
    }

    /// `[1, pos]` u32 token ids of `text` on `device`, with the special tokens the
    /// tokenizer adds (a BOS where the checkpoint asks for one, as transformers does).
    ///
    /// ```no_run
    /// # let model = auto_hook_models::load("model.gguf", candle_core::DType::F32, &candle_core::Device::Cpu)?;
    /// let tokens = model.to_tokens("The capital of France is", &candle_core::Device::Cpu)?;
    /// let logits = model.forward(&tokens, None)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_tokens(&self, text: &str, device: &Device) -> Result<Tensor> {
        let ids = self.need_text()?.encode(text, true)?;
        if ids.is_empty() {
            return Err(Error::EmptyInput {
                what: format!("the text {text:?}"),
            });
        }
        let n = ids.len();
        Ok(Tensor::from_vec(ids, (1, n), device)?)
    }

    /// The text of `ids` (special tokens kept).
    pub fn to_string(&self, ids: &[u32]) -> Result<String> {
        self.need_text()?.decode(ids)
    }

    /// Each token of `text` as its own string (`[" The", " capital", ...]`), with the
    /// special tokens the tokenizer adds.
    pub fn to_str_tokens(&self, text: &str) -> Result<Vec<String>> {
        let t = self.need_text()?;
        t.encode(text, true)?
            .iter()
            .map(|&id| t.decode(&[id]))
            .collect()
    }

    /// The id of `token`, which must tokenize to exactly one token (`" Paris"`).
    pub fn to_single_token(&self, token: &str) -> Result<u32> {
        match self.need_text()?.encode(token, false)?.as_slice() {
            [id] => Ok(*id),
            ids => Err(Error::Input(format!(
                "{token:?} is {} tokens ({ids:?}), not one",
                ids.len()
            ))),
        }
    }

    /// Renders a chat with the checkpoint's chat template ([`Text::apply_chat_template`]).
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.need_text()?
            .apply_chat_template(messages, add_generation_prompt)
    }
}
