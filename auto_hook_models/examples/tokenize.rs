//! Tokenizes a text with a checkpoint's tokenizer.
//!
//! cargo run --release -p auto_hook_models --example tokenize -- MODEL TEXT
//!
//! MODEL is a `.gguf` file (the tokenizer its metadata describes, built as transformers
//! builds it) or a folder with `tokenizer.json`. Prints each token, then the ids as one
//! JSON list on the last line, with no special tokens added (no BOS), as
//! `tokenizer.encode(text, add_special_tokens=False)` in transformers.

use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, text] = &args[..] else {
        return Err("usage: tokenize MODEL TEXT".into());
    };
    let tokenizer = auto_hook_models::load_tokenizer(model)?
        .ok_or_else(|| format!("{model} has no tokenizer.json"))?;
    let encoding = tokenizer
        .encode(text.as_str(), false)
        .map_err(|e| e.to_string())?;
    for (id, token) in encoding.get_ids().iter().zip(encoding.get_tokens()) {
        eprintln!("{id:>8} {token:?}");
    }
    println!("{}", serde_json::to_string(encoding.get_ids())?);
    Ok(())
}
