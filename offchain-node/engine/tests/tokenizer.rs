//! CLIP tokenisation against known ids and an independent implementation
//! (`instant-clip-tokenizer`, which ships OpenAI's vocabulary file).

use hydrogen_engine::tokenizer::ClipTokenizer;
use std::path::PathBuf;

/// OpenAI's `bpe_simple_vocab_16e6.txt`, as shipped inside the
/// `instant-clip-tokenizer` crate (a dev-dependency, so it is in Cargo's registry).
fn openai_vocab() -> String {
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cargo"));
    let src = home.join("registry/src");
    for index in std::fs::read_dir(&src).expect("cargo registry sources") {
        let path = index
            .expect("entry")
            .path()
            .join("instant-clip-tokenizer-0.1.0/bpe_simple_vocab_16e6.txt");
        if path.is_file() {
            return std::fs::read_to_string(path).expect("vocab file");
        }
    }
    panic!(
        "bpe_simple_vocab_16e6.txt not found under {}",
        src.display()
    );
}

fn ours() -> ClipTokenizer {
    ClipTokenizer::from_openai_bpe(&openai_vocab(), "<|endoftext|>").expect("tokenizer")
}

#[test]
fn known_clip_ids() {
    let t = ours();
    assert_eq!((t.bos(), t.eos()), (49406, 49407));
    assert_eq!(t.encode("a"), [320]);
    assert_eq!(t.encode("cat"), [2368]);
    assert_eq!(
        t.chunks("a photograph of an astronaut riding a horse", 75, 1)[0][..10],
        [49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]
    );
}

#[test]
fn agrees_with_instant_clip_tokenizer() {
    let t = ours();
    let reference = instant_clip_tokenizer::Tokenizer::new();
    for text in [
        "a photograph of an astronaut riding a horse",
        "A  Cozy   cabin in the WOODS, 4k, highly-detailed; trending on artstation!!",
        "portrait of a cyberpunk samurai, neon lights, rain, 35mm f/1.4, bokeh",
        "it's a dog's life, isn't it? we'll see... 1234567 ünïcödé café",
    ] {
        let mut want = Vec::new();
        reference.encode(text, &mut want);
        let want: Vec<u32> = want.into_iter().map(|t| u32::from(t.to_u16())).collect();
        assert_eq!(t.encode(text), want, "{text}");
    }
}

#[test]
fn long_prompts_are_chunked_not_cut() {
    let t = ours();
    let prompt = (0..40)
        .map(|i| format!("word{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let ids = t.encode(&prompt);
    assert!(
        ids.len() > 75,
        "the prompt must need two chunks ({} tokens)",
        ids.len()
    );
    let chunks = t.chunks(&prompt, 75, 1);
    assert_eq!(chunks.len(), ids.len().div_ceil(75));
    for c in &chunks {
        assert_eq!(c.len(), 77);
        assert_eq!(c[0], t.bos());
    }
    // Every token appears, in order, across the chunks.
    let body: Vec<u32> = chunks
        .iter()
        .flat_map(|c| {
            let end = c[1..]
                .iter()
                .position(|&x| x == t.eos())
                .map_or(76, |p| p + 1);
            c[1..end].to_vec()
        })
        .collect();
    assert_eq!(body, ids);
    // A short negative prompt is padded to the same number of chunks.
    let neg = t.chunks("blurry", 75, chunks.len());
    assert_eq!(neg.len(), chunks.len());
    assert_eq!(neg[1][..2], [t.bos(), t.eos()]);
}
