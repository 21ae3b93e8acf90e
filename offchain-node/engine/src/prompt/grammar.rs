//! Compel's prompt grammar (`compel/prompt_parser.py`, `build_parser_syntax`),
//! ported element by element from its pyparsing definition. pyparsing's
//! combinators are ordered choices that never go back into a choice once made
//! (a PEG), which is what recursive descent gives; each function names the
//! pyparsing element it stands for, and keeps its whitespace rule: almost
//! every element skips leading `" \t\n\r"`, the parts of a word do not.
//!
//! The parse tree ([`Term`]) is compel's before `PromptParser.flatten`; the
//! module above flattens it.

use super::PromptError;
use std::collections::HashMap;

/// A node of compel's parse tree.
#[derive(Debug, Clone)]
pub(super) enum Term {
    /// `Fragment` as the parser makes it: weight 1, its text unescaped once.
    Text(String),
    /// `Attention`: its children weighted by a factor.
    Attention(f64, Vec<Term>),
    /// `CrossAttentionControlSubstitute`: `original.swap(edited)`.
    Swap(Vec<Term>, Vec<Term>),
    /// `LoraWeight` (`withLora(name, w)`, `useLora(…)`): no part of the conditioning.
    Lora,
}

/// One prompt of the top-level `Conjunction`, before flattening.
#[derive(Debug, Clone)]
pub(super) enum Item {
    Prompt(Vec<Term>),
    Blend {
        prompts: Vec<Vec<Term>>,
        weights: Vec<f64>,
        normalize: bool,
    },
}

/// The syntactic characters a plain word may not hold unescaped.
const SYNTAX: &[char] = &['(', ')', '"', ',', '.', '+', '-', '='];

/// Nesting of parentheses and quotes that is refused rather than recursed into
/// (compel itself hits Python's recursion limit not far beyond).
const MAX_DEPTH: usize = 40;

/// pyparsing's default whitespace, skipped before most elements.
fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Python's `string.whitespace`, which ends a `free_word` and a `non_syntax_word`.
fn is_ascii_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// The characters `White()` skips before looking for `" \t\n\r"`: pyparsing's
/// other whitespace.
fn is_white_skip(c: char) -> bool {
    matches!(
        c,
        '\x0c' | '\u{a0}' | '\u{1680}' | '\u{180e}' | '\u{2000}'
            ..='\u{200b}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

/// Python's `str.isspace()`.
pub(super) fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// compel's `Fragment.__init__` unescaping, which it applies every time it
/// makes a fragment (so twice or more for one text).
pub(super) fn unescape(text: &str) -> String {
    text.replace("\\(", "(")
        .replace("\\)", ")")
        .replace("\\\"", "\"")
}

/// Python's `float(str)` for an option given as a weight.
fn py_float(s: &str) -> Option<f64> {
    s.trim_matches(py_isspace).parse::<f64>().ok()
}

/// An operator option (`0.7`, `no_normalize`, `s_start=0.2`).
enum Opt {
    Number(f64),
    Word(String),
}

impl Opt {
    /// compel's `float(w[0])` of the option's first token.
    fn weight(&self) -> Result<f64, PromptError> {
        match self {
            Opt::Number(v) => Ok(*v),
            Opt::Word(w) => {
                py_float(w).ok_or_else(|| PromptError::new(format!("`{w}` is not a weight")))
            }
        }
    }
}

type Found<T> = Option<(T, usize)>;
type Parsed<T> = Result<Found<T>, PromptError>;

pub(super) struct Parser {
    s: Vec<char>,
    depth: usize,
    /// `parenthesized_fragment` and `quoted_fragment` by position: every
    /// operator first parses its target and may fail after it, so without
    /// these nested parentheses would be parsed again at each level.
    parens: HashMap<usize, Found<Vec<Term>>>,
    quoted: HashMap<(usize, bool), Found<Vec<Term>>>,
}

impl Parser {
    fn new(text: &str, depth: usize) -> Result<Self, PromptError> {
        if depth > MAX_DEPTH {
            return Err(PromptError::new(format!(
                "nested more than {MAX_DEPTH} levels deep"
            )));
        }
        Ok(Self {
            s: text.chars().collect(),
            depth,
            parens: HashMap::new(),
            quoted: HashMap::new(),
        })
    }

    /// `conjunction.parse_string(prompt)`: an explicit `(…).and(…)` (text
    /// after it is ignored, as `parse_string` without `parse_all` does) or a
    /// whole prompt or blend.
    pub(super) fn parse(text: &str) -> Result<Vec<(Item, f64)>, PromptError> {
        let mut p = Self::new(text, 0)?;
        if let Some((items, _)) = p.explicit_conjunction(0)? {
            return Ok(items);
        }
        match p.implicit_conjunction(0)? {
            Some((item, _)) => Ok(vec![(item, 1.0)]),
            None => Err(PromptError::new(
                "compel's grammar does not parse it (a vertical tab or form feed?)".into(),
            )),
        }
    }

    fn at(&self, p: usize) -> Option<char> {
        self.s.get(p).copied()
    }

    fn skip(&self, mut p: usize) -> usize {
        while self.at(p).is_some_and(is_ws) {
            p += 1;
        }
        p
    }

    /// `Literal(text)`.
    fn literal(&self, p: usize, text: &str) -> Option<usize> {
        let mut q = self.skip(p);
        for c in text.chars() {
            if self.at(q) != Some(c) {
                return None;
            }
            q += 1;
        }
        Some(q)
    }

    /// `White()` matches at `p` (which `NotAny(White())` forbids).
    fn white_at(&self, mut p: usize) -> bool {
        while self.at(p).is_some_and(is_white_skip) {
            p += 1;
        }
        self.at(p).is_some_and(is_ws)
    }

    fn string_end(&self, p: usize) -> bool {
        self.skip(p) == self.s.len()
    }

    /// `non_syntax_word`: escaped syntax (`\(`), a `+`/`-` that does not end
    /// the word, digits and any other non-space, non-syntax character.
    fn non_syntax_word(&self, p: usize) -> Found<String> {
        let start = self.skip(p);
        let mut q = start;
        let mut text = String::new();
        loop {
            match self.at(q) {
                Some('\\') if self.at(q + 1).is_some_and(|c| SYNTAX.contains(&c)) => {
                    text.extend(&self.s[q..q + 2]);
                    q += 2;
                }
                // NotAny(White() | Char(syntactic_chars) | StringEnd())
                Some(c @ ('+' | '-'))
                    if !(self.white_at(q + 1)
                        || self.at(q + 1).is_none_or(|n| SYNTAX.contains(&n))) =>
                {
                    text.push(c);
                    q += 1;
                }
                Some(c) if !is_ascii_ws(c) && !SYNTAX.contains(&c) => {
                    text.push(c);
                    q += 1;
                }
                _ => break,
            }
        }
        (q > start).then(|| (unescape(&text), q))
    }

    /// `free_word`: any run of non-space characters (no whitespace skipped).
    fn free_word(&self, p: usize) -> Found<String> {
        let mut q = p;
        while self.at(q).is_some_and(|c| !is_ascii_ws(c)) {
            q += 1;
        }
        (q > p).then(|| (unescape(&self.s[p..q].iter().collect::<String>()), q))
    }

    /// `QuotedString('"', esc_quote='\\"')`: the unquoted content. Like the
    /// regex it stands for, it takes `\"` as an escaped quote unless only that
    /// reading leaves the string unclosed.
    fn quoted_string(&self, p: usize) -> Found<String> {
        let q = self.skip(p);
        if self.at(q) != Some('"') {
            return None;
        }
        let mut i = q + 1;
        let mut last_escape = None;
        let end = loop {
            match self.at(i) {
                Some('\\') if self.at(i + 1) == Some('"') => {
                    last_escape = Some(i + 1);
                    i += 2;
                }
                Some('"') => break Some(i),
                Some('\n' | '\r') | None => break last_escape,
                Some(_) => i += 1,
            }
        }?;
        let raw: String = self.s[q + 1..end].iter().collect();
        // pyparsing's whitespace escapes, then the escaped quote. (pyparsing
        // versions differ on numeric escapes such as `\x41`; they stay as written.)
        let content = raw
            .replace("\\t", "\t")
            .replace("\\n", "\n")
            .replace("\\f", "\x0c")
            .replace("\\r", "\r")
            .replace("\\\"", "\"");
        Some((content, end + 1))
    }

    /// `quoted_fragment` (`as_prompt` false: the content parsed as a
    /// fragment) or `quoted_prompt` (true: parsed as a whole prompt).
    fn quoted(&mut self, p: usize, as_prompt: bool) -> Parsed<Vec<Term>> {
        if let Some(found) = self.quoted.get(&(p, as_prompt)) {
            return Ok(found.clone());
        }
        let found = match self.quoted_string(p) {
            None => None,
            Some((content, end)) => {
                Self::parse_quoted_content(&content, as_prompt, self.depth + 1)?
                    .map(|terms| (terms, end))
            }
        };
        self.quoted.insert((p, as_prompt), found.clone());
        Ok(found)
    }

    /// compel's `parse_fragment_str(…, in_quotes=True)`.
    fn parse_quoted_content(
        content: &str,
        as_prompt: bool,
        depth: usize,
    ) -> Result<Option<Vec<Term>>, PromptError> {
        if content.trim_matches(py_isspace).is_empty() {
            return Ok(Some(vec![Term::Text(String::new())]));
        }
        let mut sub = Self::new(&content.replace('"', "\\\""), depth)?;
        let (terms, end) = if as_prompt {
            sub.prompt(0)?
        } else {
            sub.fragment(0, true)?
        };
        Ok(sub.string_end(end).then_some(terms))
    }

    /// `parenthesized_fragment`: `( fragment_including_commas_or_periods )`.
    fn parenthesized(&mut self, p: usize) -> Parsed<Vec<Term>> {
        if let Some(found) = self.parens.get(&p) {
            return Ok(found.clone());
        }
        let found = match self.literal(p, "(") {
            None => None,
            Some(q) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(PromptError::new(format!(
                        "parentheses nested more than {MAX_DEPTH} levels deep"
                    )));
                }
                let inner = self.fragment(q, true);
                self.depth -= 1;
                let (terms, q) = inner?;
                self.literal(q, ")").map(|end| (terms, end))
            }
        };
        self.parens.insert(p, found.clone());
        Ok(found)
    }

    /// `fragment_including_commas_or_periods` (`commas`) or `fragment_excluding_commas`.
    fn fragment(&mut self, mut p: usize, commas: bool) -> Result<(Vec<Term>, usize), PromptError> {
        let mut terms = Vec::new();
        loop {
            if let Some(((), q)) = self.lora(p) {
                terms.push(Term::Lora);
                p = q;
            } else if let Some((t, q)) = self.attention(p)? {
                terms.push(t);
                p = q;
            } else if let Some((t, q)) = self.swap(p)? {
                terms.push(t);
                p = q;
            } else if let Some((ts, q)) = self.parenthesized(p)? {
                terms.extend(ts);
                p = q;
            } else if let Some((ts, q)) = self.quoted(p, false)? {
                terms.extend(ts);
                p = q;
            } else if let Some((w, q)) = self.non_syntax_word(p) {
                terms.push(Term::Text(w));
                p = q;
            } else if let Some((c, q)) = commas
                .then(|| {
                    [",", "."]
                        .into_iter()
                        .find_map(|c| self.literal(p, c).map(|q| (c, q)))
                })
                .flatten()
            {
                terms.push(Term::Text(c.into()));
                p = q;
            } else {
                return Ok((terms, p));
            }
        }
    }

    /// `potential_operator_target`: a quoted or parenthesized fragment, or a word.
    fn target(&mut self, p: usize) -> Parsed<Vec<Term>> {
        if let Some(found) = self.quoted(p, false)? {
            return Ok(Some(found));
        }
        if let Some(found) = self.parenthesized(p)? {
            return Ok(Some(found));
        }
        Ok(self
            .non_syntax_word(p)
            .map(|(w, q)| (vec![Term::Text(w)], q)))
    }

    /// `number`: pyparsing's `real` (`[+-]?(\d+\.\d*|\.\d+)`), else an integer.
    fn number(&self, p: usize) -> Found<f64> {
        let q = self.skip(p);
        let digits = |mut i: usize| {
            while self.at(i).is_some_and(|c| c.is_ascii_digit()) {
                i += 1;
            }
            i
        };
        let value = |end: usize| {
            let text: String = self.s[q..end].iter().collect();
            text.parse::<f64>().ok().map(|v| (v, end))
        };
        let sign = usize::from(matches!(self.at(q), Some('+' | '-')));
        let int_end = digits(q + sign);
        if self.at(int_end) == Some('.') {
            let frac_end = digits(int_end + 1);
            if int_end > q + sign || frac_end > int_end + 1 {
                return value(frac_end);
            }
        }
        let sign = usize::from(self.at(q) == Some('-'));
        let end = digits(q + sign);
        (end > q + sign).then(|| value(end)).flatten()
    }

    /// `attention_weight_operator`: `+…` (1.1 each), `-…` (0.9 each) or, with
    /// `numbers`, a number.
    fn weight_operator(&self, p: usize, numbers: bool) -> Found<f64> {
        let q = self.skip(p);
        for (sign, base) in [('+', 1.1f64), ('-', 0.9)] {
            let mut end = q;
            while self.at(end) == Some(sign) {
                end += 1;
            }
            if end > q {
                // Python's `pow(base, n)`, which calls the C library's pow as powf does.
                return Some((base.powf((end - q) as f64), end));
            }
        }
        numbers.then(|| self.number(q)).flatten()
    }

    /// `attention`: `target.attend(w)`, `(…)w`/`"…"w` and `word+`/`word-`.
    fn attention(&mut self, p: usize) -> Parsed<Term> {
        // attention_explicit
        if let Some((children, q)) = self.target(p)? {
            let weighted = self
                .literal(q, ".attend")
                .and_then(|q| self.literal(q, "("))
                .and_then(|q| self.weight_operator(q, true))
                .and_then(|(w, q)| self.literal(q, ")").map(|q| (w, q)));
            if let Some((w, q)) = weighted {
                return Ok(Some((Term::Attention(w, children), q)));
            }
        }
        // attention_implicit: a quoted or parenthesized fragment and its weight, no space between
        let group = match self.quoted(p, false)? {
            Some(found) => Some(found),
            None => self.parenthesized(p)?,
        };
        if let Some((children, q)) = group {
            if !self.white_at(q) {
                if let Some((w, q)) = self.weight_operator(q, true) {
                    return Ok(Some((Term::Attention(w, children), q)));
                }
            }
        }
        // … or a word and its `+`s or `-`s
        if let Some((word, q)) = self.non_syntax_word(p) {
            if !self.white_at(q) {
                if let Some((w, q)) = self.weight_operator(q, false) {
                    return Ok(Some((Term::Attention(w, vec![Term::Text(word)]), q)));
                }
            }
        }
        Ok(None)
    }

    /// `cross_attention_substitute`: `target.swap(replacement[, options])`.
    fn swap(&mut self, p: usize) -> Parsed<Term> {
        let Some((original, q)) = self.target(p)? else {
            return Ok(None);
        };
        let Some(q) = self.literal(q, ".swap").and_then(|q| self.literal(q, "(")) else {
            return Ok(None);
        };
        let (edited, q) = self.fragment(q, false)?;
        // The options (s_start, t_end, …) steer prompt-to-prompt attention
        // control, which the conditioning does not depend on.
        let q = match self.literal(q, ",") {
            Some(q) => self.options(q).1,
            None => q,
        };
        Ok(self
            .literal(q, ")")
            .map(|end| (Term::Swap(original, edited), end)))
    }

    /// `lora_weight`: `withLora(name[, weight])` or `useLora(…)`.
    fn lora(&self, p: usize) -> Found<()> {
        let q = self
            .literal(p, "useLora")
            .or_else(|| self.literal(p, "withLora"))?;
        let q = self.literal(q, "(")?;
        let (_, q) = self.keyword(q)?;
        let q = match self.literal(q, ",").and_then(|q| self.number(q)) {
            Some((_, q)) => q,
            None => q,
        };
        self.literal(q, ")").map(|q| ((), q))
    }

    /// `keyword`: `Word(alphanums + '_' + '-')`.
    fn keyword(&self, p: usize) -> Found<String> {
        let q = self.skip(p);
        let mut end = q;
        while self
            .at(end)
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            end += 1;
        }
        (end > q).then(|| (self.s[q..end].iter().collect(), end))
    }

    /// `option`: `keyword=value`, a number or a keyword.
    fn option(&self, p: usize) -> Found<Opt> {
        if let Some((key, q)) = self.keyword(p) {
            if let Some(q) = self.literal(q, "=") {
                let value = self
                    .number(q)
                    .map(|(_, q)| q)
                    .or_else(|| self.keyword(q).map(|(_, q)| q));
                if let Some(q) = value {
                    return Some((Opt::Word(key), q));
                }
            }
        }
        if let Some((v, q)) = self.number(p) {
            return Some((Opt::Number(v), q));
        }
        self.keyword(p).map(|(w, q)| (Opt::Word(w), q))
    }

    /// `options`: an optional comma-separated list of options.
    fn options(&self, p: usize) -> (Vec<Opt>, usize) {
        let Some((first, mut p)) = self.option(p) else {
            return (Vec::new(), p);
        };
        let mut opts = vec![first];
        while let Some((o, q)) = self.literal(p, ",").and_then(|q| self.option(q)) {
            opts.push(o);
            p = q;
        }
        (opts, p)
    }

    /// The `( target, … )` list of a blend or conjunction: each a target or a
    /// quoted whole prompt.
    fn target_list(&mut self, p: usize) -> Parsed<Vec<Vec<Term>>> {
        let Some(q) = self.literal(p, "(") else {
            return Ok(None);
        };
        let item = |parser: &mut Self, p: usize| -> Parsed<Vec<Term>> {
            match parser.target(p)? {
                Some(found) => Ok(Some(found)),
                None => parser.quoted(p, true),
            }
        };
        let Some((first, mut q)) = item(self, q)? else {
            return Ok(None);
        };
        let mut items = vec![first];
        while let Some(after_comma) = self.literal(q, ",") {
            let Some((next, r)) = item(self, after_comma)? else {
                break;
            };
            items.push(next);
            q = r;
        }
        Ok(self.literal(q, ")").map(|q| (items, q)))
    }

    /// `( … ).operator( options )` for `operators`: the targets, which operator, the options.
    fn operator_call(
        &mut self,
        p: usize,
        operators: &[&'static str],
    ) -> Parsed<(Vec<Vec<Term>>, Vec<Opt>)> {
        let Some((targets, q)) = self.target_list(p)? else {
            return Ok(None);
        };
        let Some(q) = operators
            .iter()
            .find_map(|op| self.literal(q, op))
            .and_then(|q| self.literal(q, "("))
        else {
            return Ok(None);
        };
        let (opts, q) = self.options(q);
        Ok(self.literal(q, ")").map(|q| ((targets, opts), q)))
    }

    /// `blend`: `("a", "b").blend(w1, w2[, no_normalize])`.
    fn blend(&mut self, p: usize) -> Parsed<Item> {
        let Some(((prompts, mut opts), q)) = self.operator_call(p, &[".blend"])? else {
            return Ok(None);
        };
        let normalize = !matches!(opts.last(), Some(Opt::Word(w)) if w == "no_normalize");
        if !normalize {
            opts.pop();
        }
        let weights = weights_for(&opts, prompts.len(), "blend")?;
        Ok(Some((
            Item::Blend {
                prompts,
                weights,
                normalize,
            },
            q,
        )))
    }

    /// `explicit_conjunction`: `("a", "b").and(w1, w2)` (or `.add`).
    fn explicit_conjunction(&mut self, p: usize) -> Parsed<Vec<(Item, f64)>> {
        let Some(((prompts, opts), q)) = self.operator_call(p, &[".and", ".add"])? else {
            return Ok(None);
        };
        let weights = weights_for(&opts, prompts.len(), "conjunction")?;
        let items = prompts.into_iter().map(Item::Prompt).zip(weights).collect();
        Ok(Some((items, q)))
    }

    /// `implicit_conjunction`: a blend or a prompt filling the whole text
    /// (LoRA terms around it are dropped, as they condition nothing).
    fn implicit_conjunction(&mut self, p: usize) -> Parsed<Item> {
        let p = self.loras(p);
        let (item, q) = match self.blend(p)? {
            Some(found) => found,
            None => {
                let (terms, q) = self.prompt(p)?;
                (Item::Prompt(terms), q)
            }
        };
        let q = self.loras(q);
        Ok(self.string_end(q).then_some((item, q)))
    }

    /// `Optional(Group(OneOrMore(lora_weight)))`.
    fn loras(&self, mut p: usize) -> usize {
        while let Some(((), q)) = self.lora(p) {
            p = q;
        }
        p
    }

    /// `prompt`: terms, quoted and parenthesized fragments and free words, up
    /// to where none of them matches.
    fn prompt(&mut self, mut p: usize) -> Result<(Vec<Term>, usize), PromptError> {
        let mut terms = Vec::new();
        loop {
            if let Some((t, q)) = self.swap(p)? {
                terms.push(t);
                p = q;
            } else if let Some(((), q)) = self.lora(p) {
                terms.push(Term::Lora);
                p = q;
            } else if let Some((t, q)) = self.attention(p)? {
                terms.push(t);
                p = q;
            } else if let Some((ts, q)) = self.quoted(p, false)? {
                terms.extend(ts);
                p = q;
            } else if let Some((ts, q)) = self.parenthesized(p)? {
                terms.extend(ts);
                p = q;
            } else if let Some((w, q)) = self.free_word(p) {
                terms.push(Term::Text(w));
                p = q;
            } else if let Some(q) = self.white(p) {
                p = q;
            } else {
                return Ok((terms, p));
            }
        }
    }

    /// `White().suppress()`.
    fn white(&self, mut p: usize) -> Option<usize> {
        while self.at(p).is_some_and(is_white_skip) {
            p += 1;
        }
        let start = p;
        while self.at(p).is_some_and(is_ws) {
            p += 1;
        }
        (p > start).then_some(p)
    }
}

/// The weights of a blend or conjunction of `count` prompts: all 1 when none
/// are given, else one each.
fn weights_for(opts: &[Opt], count: usize, what: &str) -> Result<Vec<f64>, PromptError> {
    if opts.is_empty() {
        return Ok(vec![1.0; count]);
    }
    let weights = opts
        .iter()
        .map(Opt::weight)
        .collect::<Result<Vec<_>, _>>()?;
    if weights.len() != count {
        return Err(PromptError::new(format!(
            "the {what} has {count} prompts but {} weights",
            weights.len()
        )));
    }
    Ok(weights)
}
