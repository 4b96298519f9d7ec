//! Plain-text corpora for the token source: text files split into documents, tokenized,
//! optionally shuffled, joined with a separator and packed into fixed-length contexts.
//!
//! Documents: a file with a line that is exactly `%` is a fortune file (Debian's
//! `fortunes`: one document per `%`-separated block); any other text is split at blank
//! lines (one document per paragraph). Overstrike (`c` backspace, old bold/underline) and
//! carriage returns are removed.

use crate::error::{io_err, Error, Result};
use crate::tokens::TokenSource;
use auto_hook::rng::Rng;
use std::path::{Path, PathBuf};

/// How documents become contexts: every context is `context_size` tokens, `[bos]` first
/// when one is given, then the next tokens of the stream of documents, each followed by
/// `separator`; with `shuffle_seed` the documents are shuffled (seeded) first.
///
/// ```
/// let p = auto_hook_sae::Packing::new(128).bos(0).separator(0).shuffle(7);
/// assert_eq!((p.context_size, p.bos, p.separator, p.shuffle_seed), (128, Some(0), Some(0), Some(7)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packing {
    /// Tokens per context.
    pub context_size: usize,
    /// Token put at the start of every context (none).
    pub bos: Option<u32>,
    /// Token put after every document (none).
    pub separator: Option<u32>,
    /// Shuffle the documents with this seed before packing (none: file order).
    pub shuffle_seed: Option<u64>,
}

impl Packing {
    /// Contexts of `context_size` tokens, no BOS, no separator, no shuffling.
    pub fn new(context_size: usize) -> Self {
        Self {
            context_size,
            bos: None,
            separator: None,
            shuffle_seed: None,
        }
    }

    /// Starts every context with `id`.
    pub fn bos(mut self, id: u32) -> Self {
        self.bos = Some(id);
        self
    }

    /// Puts `id` after every document.
    pub fn separator(mut self, id: u32) -> Self {
        self.separator = Some(id);
        self
    }

    /// Shuffles the documents with `seed`.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.shuffle_seed = Some(seed);
        self
    }
}

/// Splits plain text into documents (see the module docs).
///
/// ```
/// let fortunes = "One.\n%\nTwo,\n\nstill two.\n%\n";
/// assert_eq!(auto_hook_sae::split_documents(fortunes), ["One.", "Two,\n\nstill two."]);
/// assert_eq!(auto_hook_sae::split_documents("a\nb\n\n\nc"), ["a\nb", "c"]);
/// ```
pub fn split_documents(text: &str) -> Vec<String> {
    let text = clean(text);
    let fortune = text.lines().any(|l| l.trim_end() == "%");
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut flush = |current: &mut String| {
        let doc = current.trim();
        if !doc.is_empty() {
            docs.push(doc.to_owned());
        }
        current.clear();
    };
    for line in text.lines() {
        let boundary = if fortune {
            line.trim_end() == "%"
        } else {
            line.trim().is_empty()
        };
        if boundary {
            flush(&mut current);
        } else {
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(line);
        }
    }
    flush(&mut current);
    docs
}

/// Removes overstrike (a character followed by backspace) and carriage returns.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if chars.peek() == Some(&'\u{8}') {
            chars.next();
        } else if c != '\r' && c != '\u{8}' {
            out.push(c);
        }
    }
    out
}

/// The documents of text files and folders (a folder: its files, recursively, in name
/// order, hidden ones skipped). A file that is not UTF-8 text is an error naming it.
pub fn read_documents(paths: &[impl AsRef<Path>]) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for path in paths {
        collect_files(path.as_ref(), &mut files)?;
    }
    if files.is_empty() {
        return Err(Error::Invalid("no text files given".into()));
    }
    let mut docs = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| io_err(&file, e))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            Error::Invalid(format!(
                "{}: not UTF-8 text (invalid byte at offset {})",
                file.display(),
                e.utf8_error().valid_up_to()
            ))
        })?;
        docs.extend(split_documents(&text));
    }
    Ok(docs)
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    if !meta.is_dir() {
        files.push(path.to_owned());
        return Ok(());
    }
    let mut entries = std::fs::read_dir(path)
        .map_err(|e| io_err(path, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| io_err(path, e)))
        .collect::<Result<Vec<_>>>()?;
    entries.sort();
    for entry in entries {
        let hidden = entry
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden {
            collect_files(&entry, files)?;
        }
    }
    Ok(())
}

impl TokenSource {
    /// Tokenizes `docs` (no special tokens added) and packs them as `packing` says.
    ///
    /// ```
    /// use auto_hook_sae::{Packing, TokenSource};
    /// # let tokenizer = tokenizers::Tokenizer::new(tokenizers::models::wordlevel::WordLevel::builder()
    /// #     .vocab([("<s>".into(), 0), ("a".into(), 1), ("b".into(), 2)].into_iter().collect())
    /// #     .unk_token("<s>".into()).build().unwrap());
    /// let t = TokenSource::from_documents(&["a", "b", "a"], &tokenizer, &Packing::new(3).bos(0).separator(0))?;
    /// assert_eq!(t.batch(0, 2)?.to_vec2::<u32>()?, [[0, 1, 0], [0, 2, 0]]); // [0 a 0 b] [0 a 0]
    /// # Ok::<(), auto_hook_sae::Error>(())
    /// ```
    pub fn from_documents(
        docs: &[impl AsRef<str>],
        tokenizer: &tokenizers::Tokenizer,
        packing: &Packing,
    ) -> Result<Self> {
        let mut order: Vec<usize> = (0..docs.len()).collect();
        if let Some(seed) = packing.shuffle_seed {
            Rng::new(seed).shuffle(&mut order);
        }
        let mut stream = Vec::new();
        for i in order {
            let doc = docs[i].as_ref();
            let enc = tokenizer
                .encode(doc, false)
                .map_err(|e| Error::Tokenizer(format!("cannot tokenize {doc:?}: {e}")))?;
            stream.extend_from_slice(enc.get_ids());
            stream.extend(packing.separator);
        }
        Self::from_ids(&stream, packing.context_size, packing.bos)
    }

    /// The documents of text files and folders ([`read_documents`]), tokenized and
    /// packed ([`TokenSource::from_documents`]).
    pub fn from_text_paths(
        paths: &[impl AsRef<Path>],
        tokenizer: &tokenizers::Tokenizer,
        packing: &Packing,
    ) -> Result<Self> {
        Self::from_documents(&read_documents(paths)?, tokenizer, packing)
    }
}
