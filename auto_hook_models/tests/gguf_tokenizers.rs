//! Tokenizers built from GGUF metadata give the ids transformers gives for the same file
//! (`scripts/make_gguf_tokenizer_fixtures.py` recorded them): SentencePiece BPE with merges
//! rebuilt from scores and byte fallback, byte-level BPE with the `llama3` split regex and
//! a user-defined token.

mod common;

use common::fixture_folder;

#[test]
fn gguf_tokenizers_match_transformers_ids_and_decoding() {
    let folder = fixture_folder("gguf_tokenizers");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("expected.json")).unwrap())
            .unwrap();
    let cases = expected.as_array().unwrap();
    assert!(cases.len() >= 14);
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let tok = auto_hook_models::load_tokenizer(folder.join(file))
            .unwrap()
            .unwrap();
        let got = tok.encode(text, true).unwrap();
        assert_eq!(got.get_ids(), want.as_slice(), "{file} {text:?}");
        let decoded = tok.decode(&want, false).unwrap();
        assert_eq!(
            decoded,
            case["decoded"].as_str().unwrap(),
            "{file} {text:?}"
        );
    }
}
