//! Prompt weighting in Compel's syntax, as the reference network encodes
//! every prompt: `Compel(tokenizer, text_encoder, truncate_long_prompts=False)`
//! of compel 2.0.2.
//!
//! - `word+`, `word++` (×1.1 each), `word-` (×0.9 each); `(a phrase)1.3`,
//!   `(a phrase)+`, `"a phrase"-`, `(a phrase).attend(0.8)`; nested groups
//!   multiply; `\(` and `\)` are literal parentheses.
//! - `("a cat", "a dog").blend(0.7, 0.3)` (`, no_normalize` to keep the
//!   weights as given): a weighted sum of the prompts' conditionings.
//! - `("a cat", "a dog").and(1, 0.5)` (or `.add`): the conditionings side by
//!   side, one after the other, each weighted away from the empty prompt's.
//! - `a cat.swap(dog)` conditions on `a cat` (the swap steers attention
//!   control, which diffusers' pipelines do not run); `withLora(name, w)`
//!   conditions on nothing.
//!
//! Anything else is text, as compel leaves it: `(masterpiece:1.2)` is the
//! text `masterpiece:1 . 2` (parentheses are grouping, not text).
//!
//! [`parse`] gives compel's flattened parse ([`Conjunction`]);
//! [`PromptEncoder`] turns prompts into conditioning tensors the way compel's
//! `EmbeddingsProvider` does.

mod encode;
mod grammar;

pub use encode::{Encoded, PromptEncoder};

use grammar::{py_isspace, unescape, Item, Parser, Term};

/// A prompt compel refuses (its parser or its flattening raises).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PromptError(String);

impl PromptError {
    fn new(message: String) -> Self {
        Self(message)
    }
}

/// Text with its weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Fragment {
    pub text: String,
    pub weight: f64,
}

/// A piece of a flattened prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Fragment(Fragment),
    /// `original.swap(edited)`.
    Swap {
        original: Vec<Piece>,
        edited: Vec<Piece>,
    },
}

/// One prompt of a conjunction.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Prompt(Vec<Piece>),
    Blend {
        prompts: Vec<Vec<Piece>>,
        weights: Vec<f64>,
        normalize: bool,
    },
}

/// compel's flattened `Conjunction`: prompts with their weights, whose
/// conditionings are put one after the other.
#[derive(Debug, Clone, PartialEq)]
pub struct Conjunction {
    pub parts: Vec<(Part, f64)>,
}

impl Conjunction {
    /// The text of a conjunction with no weighting in it (one prompt of
    /// weight-1 fragments): its fragments, which compel tokenizes one by one.
    pub fn unweighted_texts(&self) -> Option<Vec<&str>> {
        let [(Part::Prompt(pieces), weight)] = self.parts.as_slice() else {
            return None;
        };
        if *weight != 1.0 {
            return None;
        }
        pieces
            .iter()
            .map(|p| match p {
                Piece::Fragment(f) if f.weight == 1.0 => Some(f.text.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// compel's `PromptParser.parse_conjunction`: the flattened parse of `prompt`.
pub fn parse(prompt: &str) -> Result<Conjunction, PromptError> {
    let text = space_after_commas(prompt);
    if text.trim_matches(py_isspace).is_empty() {
        return Ok(Conjunction {
            parts: vec![(Part::Prompt(vec![fragment("", 1.0)]), 1.0)],
        });
    }
    flatten(Parser::parse(&text)?)
}

/// compel's `re.sub(r',(\S)', r', \1', prompt)`.
fn space_after_commas(prompt: &str) -> String {
    let mut out = String::with_capacity(prompt.len());
    let mut chars = prompt.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == ',' {
            if let Some(&next) = chars.peek().filter(|&&n| !py_isspace(n)) {
                out.push(' ');
                out.push(next);
                chars.next();
            }
        }
    }
    out
}

/// A `Fragment` as compel makes one, unescaping its text again.
fn fragment(text: &str, weight: f64) -> Piece {
    Piece::Fragment(Fragment {
        text: unescape(text),
        weight,
    })
}

/// `PromptParser.flatten`: weights multiplied down the tree, neighbouring
/// fragments of equal weight fused, prompts that hold nothing dropped.
fn flatten(items: Vec<(Item, f64)>) -> Result<Conjunction, PromptError> {
    let mut parts = Vec::new();
    for (item, weight) in items {
        match item {
            Item::Prompt(terms) => {
                let pieces = fuse(flatten_terms(&terms, 1.0));
                if !pieces.is_empty() {
                    parts.push((Part::Prompt(pieces), weight));
                }
            }
            Item::Blend {
                prompts,
                weights,
                normalize,
            } => {
                let prompts: Vec<Vec<Piece>> = prompts
                    .iter()
                    .map(|terms| fuse(flatten_terms(terms, 1.0)))
                    .filter(|pieces| !pieces.is_empty())
                    .collect();
                if prompts.len() != weights.len() {
                    return Err(PromptError::new(format!(
                        "the blend has {} prompts with text but {} weights",
                        prompts.len(),
                        weights.len()
                    )));
                }
                if prompts
                    .iter()
                    .flatten()
                    .any(|p| matches!(p, Piece::Swap { .. }))
                {
                    return Err(PromptError::new("a blend cannot hold a .swap()".into()));
                }
                parts.push((
                    Part::Blend {
                        prompts,
                        weights,
                        normalize,
                    },
                    weight,
                ));
            }
        }
    }
    Ok(Conjunction { parts })
}

fn flatten_terms(terms: &[Term], scale: f64) -> Vec<Piece> {
    let mut out = Vec::new();
    for term in terms {
        match term {
            Term::Text(text) => out.push(fragment(text, 1.0 * scale)),
            Term::Attention(weight, children) => {
                out.extend(flatten_terms(children, scale * weight))
            }
            Term::Swap(original, edited) => out.push(Piece::Swap {
                original: or_empty(flatten_terms(original, scale)),
                edited: or_empty(flatten_terms(edited, scale)),
            }),
            Term::Lora => {}
        }
    }
    out
}

/// compel's `fuse_fragments`: a fragment joins the one before it (with a
/// space) when their weights are equal.
fn fuse(pieces: Vec<Piece>) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Swap { original, edited } => out.push(Piece::Swap {
                original: or_empty(fuse(original)),
                edited: or_empty(fuse(edited)),
            }),
            Piece::Fragment(f) => match out.last_mut() {
                Some(Piece::Fragment(last)) if last.weight == f.weight => {
                    last.text = unescape(&format!("{} {}", last.text, f.text));
                }
                _ => out.push(Piece::Fragment(f)),
            },
        }
    }
    out
}

/// A swap's side that flattened to nothing is one empty fragment.
fn or_empty(pieces: Vec<Piece>) -> Vec<Piece> {
    if pieces.is_empty() {
        vec![fragment("", 1.0)]
    } else {
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(prompt: &str) -> Vec<(String, f64)> {
        let conj = parse(prompt).expect("parses");
        let [(Part::Prompt(pieces), _)] = conj.parts.as_slice() else {
            panic!("one prompt: {conj:?}");
        };
        pieces
            .iter()
            .map(|p| match p {
                Piece::Fragment(f) => (f.text.clone(), f.weight),
                Piece::Swap { .. } => panic!("a swap"),
            })
            .collect()
    }

    #[test]
    fn weights_multiply_down_the_tree() {
        assert_eq!(
            texts("a (b (c)1.5)0.5 d++"),
            [
                ("a".into(), 1.0),
                ("b".into(), 0.5),
                ("c".into(), 0.75),
                ("d".into(), 1.1f64.powf(2.0))
            ]
        );
    }

    #[test]
    fn numbers_parse_as_python_floats() {
        assert_eq!(texts("(x)1.")[0].1, 1.0);
        assert_eq!(texts("(x).5")[0].1, 0.5);
        assert_eq!(texts("(x)2")[0].1, 2.0);
        assert_eq!(texts("x.attend(0.25)")[0].1, 0.25);
        // `-` is an operator before it is a sign: `(x)-1.5` is x at 0.9, then the text 1.5.
        assert_eq!(texts("(x)-1.5"), [("x".into(), 0.9), ("1.5".into(), 1.0)]);
    }

    #[test]
    fn commas_get_a_space_after_them() {
        assert_eq!(space_after_commas("a,b,,c, d,"), "a, b, ,c, d,");
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed() {
        let deep = format!("{}cat{}", "(".repeat(500), ")1.1".repeat(500));
        assert!(parse(&deep).is_err());
        let wide = "(a)1.1 ".repeat(2000);
        assert_eq!(texts(&wide).len(), 1);
    }
}
