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
fn text_is_split_into_paragraphs_and_packed() {
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

/// A word-level tokenizer over `words` (ids in order), splitting on whitespace.
fn word_tokenizer(words: &[&str]) -> tokenizers::Tokenizer {
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    let vocab: HashMap<String, u32> = words
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
    tok
}

#[test]
fn fortunes_split_at_percent_lines_and_other_text_at_blank_lines() {
    use auto_hook_sae::split_documents;
    let fortunes = "A bird in the hand\n\tis worth two.\n%\nFirst paragraph.\n\nSecond, same fortune.\n%\n\n%\nLast.";
    assert_eq!(
        split_documents(fortunes),
        [
            "A bird in the hand\n\tis worth two.",
            "First paragraph.\n\nSecond, same fortune.",
            "Last."
        ]
    );
    let plain = "\n\nOne line,\nthe same paragraph.\r\n   \r\nAnother.\n\n\n";
    assert_eq!(
        split_documents(plain),
        ["One line,\nthe same paragraph.", "Another."]
    );
    // Overstrike (bold "b\x08b", underline "_\x08u") keeps the struck character.
    assert_eq!(split_documents("b\u{8}bold _\u{8}u"), ["bold u"]);
    assert!(split_documents("%\n%\n  \n").is_empty());
}

#[test]
fn documents_are_tokenized_separated_shuffled_and_packed() {
    use auto_hook_sae::{Packing, TokenSource};
    let words = ["[UNK]", "<s>", "a", "b", "c", "d", "e", "f", "g", "h"];
    let tok = word_tokenizer(&words);
    let docs: Vec<String> = ["a b", "c", "d e f", "g", "h", "a a", "b b b", "c d"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let plain =
        TokenSource::from_documents(&docs, &tok, &Packing::new(4).bos(1).separator(1)).unwrap();
    // stream: a b <s> c <s> d e f <s> g <s> h ... in windows of 3 after <s>
    assert_eq!(
        plain.batch(0, 3).unwrap().to_vec2::<u32>().unwrap(),
        [[1, 2, 3, 1], [1, 4, 1, 5], [1, 6, 7, 1]]
    );
    let packing = Packing::new(4).separator(1).shuffle(3);
    let a = TokenSource::from_documents(&docs, &tok, &packing).unwrap();
    let b = TokenSource::from_documents(&docs, &tok, &packing).unwrap();
    let ids = |t: &TokenSource| {
        let mut v = t
            .batch(0, t.len())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        v.truncate(t.len() * 4);
        v
    };
    assert_eq!(ids(&a), ids(&b), "seeded shuffling is deterministic");
    let unshuffled =
        TokenSource::from_documents(&docs, &tok, &Packing::new(4).separator(1)).unwrap();
    assert_ne!(ids(&a), ids(&unshuffled), "the documents moved");
    // Same documents: 8 docs, 15 words + 8 separators = 23 tokens -> 5 windows of 4.
    assert_eq!((a.len(), unshuffled.len()), (5, 5));
    assert!(ids(&a).iter().all(|&t| t != 0), "no unknown word");
}

#[test]
fn text_folders_are_read_in_order_and_bad_files_named() {
    use auto_hook_sae::{read_documents, Packing, TokenSource};
    let dir = temp("corpus");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("b_fortunes"), "c d\n%\ne\n%\n").unwrap();
    std::fs::write(dir.join("a_plain.txt"), "a b\n\nb a\n").unwrap();
    std::fs::write(dir.join("sub/c.txt"), "f").unwrap();
    std::fs::write(dir.join(".hidden"), "\u{FFFD} never read").unwrap();
    let docs = read_documents(&[&dir]).unwrap();
    assert_eq!(docs, ["a b", "b a", "c d", "e", "f"]);
    let tok = word_tokenizer(&["[UNK]", "<s>", "a", "b", "c", "d", "e", "f"]);
    let t = TokenSource::from_text_paths(&[&dir], &tok, &Packing::new(3).separator(1)).unwrap();
    assert_eq!(
        t.batch(0, 2).unwrap().to_vec2::<u32>().unwrap(),
        [[2, 3, 1], [3, 2, 1]]
    );
    std::fs::write(dir.join("sub/binary.dat"), [0x66u8, 0x6f, 0xff, 0x00]).unwrap();
    let err = read_documents(&[&dir]).unwrap_err().to_string();
    assert!(
        err.contains("binary.dat") && err.contains("not UTF-8 text (invalid byte at offset 2)"),
        "{err}"
    );
    let err = read_documents(&[dir.join("missing")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
    let empty = temp("empty_corpus");
    std::fs::create_dir_all(&empty).unwrap();
    let err = read_documents(&[&empty]).unwrap_err().to_string();
    assert!(err.contains("no text files"), "{err}");
    std::fs::remove_dir_all(dir).ok();
    std::fs::remove_dir_all(empty).ok();
}

#[test]
fn held_out_sequences_split_off_the_end() {
    let t = TokenSource::from_ids(&(0..20).collect::<Vec<u32>>(), 4, None).unwrap();
    let (train, held) = t.clone().split_last(2).unwrap();
    assert_eq!((train.len(), held.len()), (3, 2));
    assert_eq!(
        held.batch(0, 2).unwrap().to_vec2::<u32>().unwrap(),
        [[12, 13, 14, 15], [16, 17, 18, 19]]
    );
    assert_eq!(
        train.batch(3, 1).unwrap().to_vec2::<u32>().unwrap(),
        [[0, 1, 2, 3]]
    );
    for n in [0, 5, 9] {
        let err = t.clone().split_last(n).unwrap_err().to_string();
        assert!(err.contains("both parts must be non-empty"), "{n}: {err}");
    }
}
