//! The tokenizer a GGUF file describes in its `tokenizer.ggml.*` metadata, built the way
//! transformers builds it from the same file (so the ids match): byte-level BPE
//! (`tokenizer.ggml.model = gpt2`, with the split regex of the pre-tokenizer the file
//! names) and SentencePiece BPE (`llama`, merges from the file or rebuilt from the
//! scores). Written as a `tokenizer.json` document and read by the `tokenizers` crate.

use super::Gguf;
use crate::error::{Error, Result};
use crate::text::Text;
use candle_core::quantized::gguf_file::Value;
use serde_json::{json, Map, Value as Json};
use std::collections::{HashMap, HashSet};

/// The regular expression that splits text before byte-level BPE, by
/// `tokenizer.ggml.pre` (llama.cpp's names). Others use GPT-2's.
fn split_regex(pre: &str) -> Option<&'static str> {
    const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN35: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    Some(match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" | "dbrx" | "smaug-bpe" => LLAMA3,
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" => QWEN2,
        "qwen35" => QWEN35,
        "tekken" => TEKKEN,
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => GPT4O,
        _ => return None,
    })
}

/// GPT-2's byte → printable character table (the byte-level BPE alphabet).
pub(crate) fn byte_alphabet() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        table[b as usize] = if printable {
            b as char
        } else {
            extra += 1;
            char::from_u32(255 + extra).unwrap_or('?')
        };
    }
    table
}

struct Meta<'a> {
    file: &'a Gguf,
}

impl Meta<'_> {
    fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        let Some(value) = self.file.value(key) else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(Error::Tokenizer(format!("`{key}` is not an array")));
        };
        items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(Error::Tokenizer(format!(
                    "`{key}` holds a {:?}, not strings",
                    other.value_type()
                ))),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn numbers(&self, key: &str) -> Result<Option<Vec<f64>>> {
        let Some(Value::Array(items)) = self.file.value(key) else {
            return Ok(None);
        };
        items
            .iter()
            .map(|v| match v {
                Value::F32(x) => Ok(*x as f64),
                Value::F64(x) => Ok(*x),
                Value::I32(x) => Ok(*x as f64),
                Value::U32(x) => Ok(*x as f64),
                Value::I8(x) => Ok(*x as f64),
                Value::U8(x) => Ok(*x as f64),
                other => Err(Error::Tokenizer(format!(
                    "`{key}` holds a {:?}, not numbers",
                    other.value_type()
                ))),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn flag(&self, key: &str) -> Option<bool> {
        match self.file.value(key) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    fn id(&self, key: &str) -> Result<Option<u32>> {
        Ok(self.file.opt_usize(key)?.map(|n| n as u32))
    }
}

/// The tokenizer, chat template and special tokens of a GGUF file.
pub(crate) fn text_from_gguf(file: &Gguf) -> Result<Text> {
    let meta = Meta { file };
    let model = match file.value("tokenizer.ggml.model") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(Error::Tokenizer(
                "`tokenizer.ggml.model` is not a string".into(),
            ))
        }
        None => {
            return Err(Error::Tokenizer(format!(
                "{} has no tokenizer (metadata `tokenizer.ggml.model` is missing)",
                file.path.display()
            )))
        }
    };
    let tokens = meta.strings("tokenizer.ggml.tokens")?.ok_or_else(|| {
        Error::Tokenizer("the GGUF has no `tokenizer.ggml.tokens` vocabulary".into())
    })?;
    let types = meta
        .numbers("tokenizer.ggml.token_type")?
        .unwrap_or_default();
    let id = |key: &str| meta.id(&format!("tokenizer.ggml.{key}"));
    let specials = Specials {
        bos: id("bos_token_id")?,
        eos: id("eos_token_id")?,
        unk: id("unknown_token_id")?,
        pad: id("padding_token_id")?,
    };
    for (what, id) in [
        ("bos", specials.bos),
        ("eos", specials.eos),
        ("unknown", specials.unk),
        ("padding", specials.pad),
    ] {
        if let Some(id) = id.filter(|&id| id as usize >= tokens.len()) {
            return Err(Error::Tokenizer(format!(
                "the {what} token id {id} is outside the vocabulary of {} tokens",
                tokens.len()
            )));
        }
    }
    let (doc, add_bos) = match model.as_str() {
        "gpt2" => {
            let merges = meta.strings("tokenizer.ggml.merges")?.ok_or_else(|| {
                Error::Tokenizer(
                    "a byte-level BPE (gpt2) tokenizer without `tokenizer.ggml.merges`".into(),
                )
            })?;
            let pre = match file.value("tokenizer.ggml.pre") {
                Some(Value::String(s)) => s.clone(),
                _ => "default".into(),
            };
            let add_bos = meta.flag("tokenizer.ggml.add_bos_token").unwrap_or(false);
            (byte_level(&tokens, &types, &merges, &pre), add_bos)
        }
        "llama" => {
            let merges = match meta.strings("tokenizer.ggml.merges")? {
                Some(m) => split_merges(&m),
                None => {
                    let scores = meta.numbers("tokenizer.ggml.scores")?.ok_or_else(|| {
                        Error::Tokenizer(
                            "a SentencePiece (llama) tokenizer with neither merges nor scores"
                                .into(),
                        )
                    })?;
                    merges_from_scores(&tokens, &scores)
                }
            };
            // llama.cpp adds BOS to a SentencePiece vocabulary unless the file says not to.
            let add_bos = meta.flag("tokenizer.ggml.add_bos_token").unwrap_or(true);
            (sentencepiece(&tokens, merges), add_bos)
        }
        other => {
            return Err(Error::Tokenizer(format!(
                "tokenizer model `{other}` is not supported (supported: gpt2 byte-level BPE, \
                 llama SentencePiece BPE)"
            )))
        }
    };
    let add_eos = meta.flag("tokenizer.ggml.add_eos_token").unwrap_or(false);
    let doc = finish(
        doc,
        &tokens,
        &types,
        &specials,
        add_bos,
        add_eos,
        model == "gpt2",
    )?;
    let tokenizer = tokenizers::Tokenizer::from_bytes(doc.to_string().as_bytes())
        .map_err(|e| Error::Tokenizer(format!("the GGUF's tokenizer does not build: {e}")))?;
    let template = match file.value("tokenizer.chat_template") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let name = |id: Option<u32>| id.map(|i| tokens[i as usize].clone());
    Ok(Text::new(tokenizer)
        .with_chat_template(template)
        .with_special_tokens(
            name(specials.bos),
            name(specials.eos),
            specials.pad.or(specials.eos),
        ))
}

struct Specials {
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
}

fn split_merges(merges: &[String]) -> Vec<(String, String)> {
    merges
        .iter()
        .filter_map(|m| m.split_once(' '))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}

/// Merges implied by a SentencePiece vocabulary: every split of a token into two
/// tokens, best score first, then the shorter left and right pieces (transformers'
/// `generate_merges`, whose stable order this keeps).
fn merges_from_scores(tokens: &[String], scores: &[f64]) -> Vec<(String, String)> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut score: HashMap<&str, f64> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !score.contains_key(t.as_str()) {
            order.push(t);
        }
        index.insert(t, i);
        score.insert(t, scores.get(i).copied().unwrap_or(0.0));
    }
    let mut merges: Vec<(&str, &str, f64)> = Vec::new();
    for merged in order {
        let mut local: Vec<(&str, &str, f64)> = merged
            .char_indices()
            .skip(1)
            .map(|(at, _)| merged.split_at(at))
            .filter(|(l, r)| index.contains_key(l) && index.contains_key(r))
            .map(|(l, r)| (l, r, score[merged]))
            .collect();
        local.sort_by_key(|(l, r, _)| (index[l], index[r]));
        merges.extend(local);
    }
    let key = |m: &(&str, &str, f64)| (m.2, m.0.chars().count(), m.1.chars().count());
    merges.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        kb.0.total_cmp(&ka.0)
            .then(kb.1.cmp(&ka.1))
            .then(kb.2.cmp(&ka.2))
    });
    merges
        .into_iter()
        .map(|(l, r, _)| (l.to_owned(), r.to_owned()))
        .collect()
}

fn byte_level(tokens: &[String], _types: &[f64], merges: &[String], pre: &str) -> Json {
    let alphabet: HashSet<char> = byte_alphabet().into_iter().collect();
    let table = byte_alphabet();
    let mut vocab = Map::new();
    for (i, t) in tokens.iter().enumerate() {
        let spelled = if t.chars().all(|c| alphabet.contains(&c)) {
            t.clone()
        } else {
            t.bytes().map(|b| table[b as usize]).collect()
        };
        vocab.insert(spelled, json!(i));
    }
    let merges: Vec<Json> = split_merges(merges)
        .into_iter()
        .map(|(a, b)| json!([a, b]))
        .collect();
    let pre_tokenizer = match split_regex(pre) {
        Some(regex) => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]}),
        None => {
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
        }
    };
    json!({
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges},
    })
}

fn sentencepiece(tokens: &[String], merges: Vec<(String, String)>) -> Json {
    let mut vocab = Map::new();
    for (i, t) in tokens.iter().enumerate() {
        vocab.insert(t.clone(), json!(i));
    }
    let merges: Vec<Json> = merges.into_iter().map(|(a, b)| json!([a, b])).collect();
    json!({
        "normalizer": null,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "first", "split": false},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true,
                  "ignore_merges": false, "vocab": vocab, "merges": merges},
    })
}

/// Adds the special tokens (the file's control tokens and its bos/eos/unk/pad), the
/// user-defined tokens (matched whole, not special) and the BOS/EOS template.
fn finish(
    mut doc: Json,
    tokens: &[String],
    types: &[f64],
    specials: &Specials,
    add_bos: bool,
    add_eos: bool,
    byte_level: bool,
) -> Result<Json> {
    let alphabet: HashSet<char> = byte_alphabet().into_iter().collect();
    let spelled = |t: &str| !byte_level || t.chars().all(|c| alphabet.contains(&c));
    let mut added: Vec<(usize, bool)> = Vec::new();
    let mut seen = HashSet::new();
    let named = [specials.bos, specials.eos, specials.unk, specials.pad];
    for (i, t) in tokens.iter().enumerate() {
        let kind = types.get(i).copied().unwrap_or(1.0) as u32;
        let special = (kind == 3 && spelled(t)) || named.contains(&Some(i as u32));
        if (special || kind == 4) && seen.insert(i) {
            added.push((i, special));
        }
    }
    doc["added_tokens"] = Json::Array(
        added
            .iter()
            .map(|&(i, special)| {
                json!({"id": i, "content": tokens[i], "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": special})
            })
            .collect(),
    );
    let token = |id: Option<u32>, what: &str| -> Result<(String, u32)> {
        let id = id.ok_or_else(|| {
            Error::Tokenizer(format!(
                "the file asks to add a {what} token but names none"
            ))
        })?;
        Ok((tokens[id as usize].clone(), id))
    };
    let mut single = Vec::new();
    let mut special_map = Map::new();
    let mut push = |(t, id): (String, u32), single: &mut Vec<Json>| {
        single.push(json!({"SpecialToken": {"id": t, "type_id": 0}}));
        special_map.insert(t.clone(), json!({"id": t, "ids": [id], "tokens": [t]}));
    };
    if add_bos {
        push(token(specials.bos, "BOS")?, &mut single);
    }
    single.push(json!({"Sequence": {"id": "A", "type_id": 0}}));
    if add_eos {
        push(token(specials.eos, "EOS")?, &mut single);
    }
    let mut pair = single.clone();
    for item in single.iter() {
        let mut item = item.clone();
        if let Some(seq) = item.get_mut("Sequence") {
            seq["id"] = json!("B");
        }
        for v in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            v["type_id"] = json!(1);
        }
        pair.push(item);
    }
    doc["post_processor"] = json!({"type": "TemplateProcessing", "single": single, "pair": pair,
                                   "special_tokens": special_map});
    doc["version"] = json!("1.0");
    doc["truncation"] = Json::Null;
    doc["padding"] = Json::Null;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_alphabet_is_gpt2s() {
        let t = byte_alphabet();
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[b' ' as usize], '\u{120}'); // Ġ
        assert_eq!(t[b'\n' as usize], '\u{10a}'); // Ċ
        assert_eq!(t.iter().collect::<HashSet<_>>().len(), 256);
    }

    #[test]
    fn merges_rebuilt_from_scores_follow_transformers_order() {
        // transformers' generate_merges on this vocabulary (checked with transformers 5.25):
        // [("▁a","b"), ("▁","ab"), ("▁","a"), ("a","b"), ("▁","b")].
        let tokens: Vec<String> = [
            "<unk>", "<s>", "</s>", "▁", "a", "b", "▁a", "▁b", "ab", "▁ab",
        ]
        .map(String::from)
        .to_vec();
        let scores = [0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -1.5, -2.5, -2.2, -0.5];
        let merges = merges_from_scores(&tokens, &scores);
        let merges: Vec<(&str, &str)> = merges
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            merges,
            [("▁a", "b"), ("▁", "ab"), ("▁", "a"), ("a", "b"), ("▁", "b")]
        );
    }
}
