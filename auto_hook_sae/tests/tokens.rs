//! Token sources: in-memory ids and tensors, token files, text with a tokenizer.

use auto_hook_sae::TokenSource;
use candle_core::{Device, Tensor};
use std::collections::HashMap;

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "auto_hook_sae_tokens_{}_{name}",
        std::process::id()
    ))
}

/// A version-1 `.npy` file with numpy's header for `descr` (`'|i1'`, ...) and raw data.
fn write_raw_npy(path: &std::path::Path, descr: &str, shape: &str, data: &[u8]) {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn npy_and_safetensors_token_files_load() {
    let npy = temp("ids.npy");
    let ids = Tensor::new(&[[1i64, 2, 3, 4], [5, 6, 7, 8]], &Device::Cpu).unwrap();
    ids.write_npy(&npy).unwrap();
    let t = TokenSource::from_file(&npy, 4, None).unwrap();
    assert_eq!(
        t.batch(0, 2).unwrap().to_vec2::<u32>().unwrap(),
        [[1, 2, 3, 4], [5, 6, 7, 8]]
    );
    let ids = Tensor::new(&[1i32, 2, 3, 4, 5, 6, 7], &Device::Cpu).unwrap();
    ids.write_npy(&npy).unwrap();
    let t = TokenSource::from_file(&npy, 4, Some(0)).unwrap();
    assert_eq!(
        t.batch(0, 2).unwrap().to_vec2::<u32>().unwrap(),
        [[0, 1, 2, 3], [0, 4, 5, 6]]
    );
    let st = temp("ids.safetensors");
    let ids = Tensor::new(&[[9i64, 8, 7], [6, 5, 4]], &Device::Cpu).unwrap();
    candle_core::safetensors::save(&HashMap::from([("input_ids".to_string(), ids)]), &st).unwrap();
    let t = TokenSource::from_file(&st, 3, None).unwrap();
    assert_eq!((t.len(), t.max_id()), (2, 9));
    std::fs::remove_file(npy).ok();
    std::fs::remove_file(st).ok();
}

#[test]
fn bad_token_inputs_are_clear_errors() {
    let f = Tensor::new(&[[0.5f32, 1.0]], &Device::Cpu).unwrap();
    assert!(TokenSource::from_tensor(&f, 2, None)
        .unwrap_err()
        .to_string()
        .contains("must be integers"));
    let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    assert!(TokenSource::from_tensor(&ids, 4, None)
        .unwrap_err()
        .to_string()
        .contains("rows of 3 tokens, but context_size is 4"));
    assert!(TokenSource::from_ids(&[1, 2], 4, None)
        .unwrap_err()
        .to_string()
        .contains("no complete sequence"));
    let neg = Tensor::new(&[-1i64, 2, 3, 4], &Device::Cpu).unwrap();
    assert!(TokenSource::from_tensor(&neg, 2, None)
        .unwrap_err()
        .to_string()
        .contains("id -1"));
    let txt = temp("ids.txt");
    std::fs::write(&txt, "1 2 3").unwrap();
    assert!(TokenSource::from_file(&txt, 2, None)
        .unwrap_err()
        .to_string()
        .contains("unsupported token file extension"));
    let npy = temp("bad.npy");
    std::fs::write(&npy, b"not numpy").unwrap();
    assert!(TokenSource::from_file(&npy, 2, None)
        .unwrap_err()
        .to_string()
        .contains("not a .npy file"));
    std::fs::remove_file(txt).ok();
    std::fs::remove_file(npy).ok();
}

/// numpy's int8 (`|i1`) holds -1 as the byte 0xFF: it is refused by name, never read as
/// the unsigned id 255 (the reader this crate had before did that).
#[test]
fn a_signed_byte_npy_is_refused_not_read_as_unsigned() {
    let npy = temp("i1.npy");
    write_raw_npy(&npy, "|i1", "(4,)", &[0xFF, 1, 2, 3]);
    let err = TokenSource::from_file(&npy, 2, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("i1") && err.contains("int32"), "{err}");
    write_raw_npy(&npy, "|u1", "(4,)", &[0xFF, 1, 2, 3]);
    let t = TokenSource::from_file(&npy, 2, None).unwrap();
    assert_eq!(t.max_id(), 255);
    write_raw_npy(&npy, "<i4", "(4,)", &[1, 0, 0, 0, 2, 0, 0, 0]);
    let err = TokenSource::from_file(&npy, 2, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated"), "{err}");
    std::fs::remove_file(npy).ok();
}

#[test]
fn text_is_tokenized_line_by_line_and_packed() {
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    let vocab: HashMap<String, u32> = ["[UNK]", "[BOS]", "[SEP]", "the", "cat", "sat", "on", "mat"]
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), i as u32))
        .collect();
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("[UNK]".into())
        .build()
        .unwrap();
    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(Whitespace {}));
    let text = "the cat sat\n\non the mat\n";
    let t = TokenSource::from_text(text, &tok, 4, Some(1), Some(2)).unwrap();
    // stream: the cat sat [SEP] on the mat [SEP] -> windows of 3 after [BOS]
    assert_eq!(
        t.batch(0, 2).unwrap().to_vec2::<u32>().unwrap(),
        [[1, 3, 4, 5], [1, 2, 6, 3]]
    );
}
