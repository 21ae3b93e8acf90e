//! LoRA adapters: low-rank updates to a model's linear and conv weights,
//! read from the two safetensors layouts found in the wild and merged into
//! the base weights at load, in f32.
//!
//! - **kohya** (`sd-scripts`, A1111, Civitai): `lora_unet_<path>` and
//!   `lora_te_<path>`, where `<path>` is the diffusers module path with `_`
//!   for `.`; tensors `.lora_down.weight` `[r, in(, k, k)]`,
//!   `.lora_up.weight` `[out, r(, 1, 1)]` and `.alpha`. LoCon adds 3×3 convs
//!   the same way.
//! - **diffusers / PEFT**: `unet.<path>.lora_A.weight` (down) and
//!   `.lora_B.weight` (up), `text_encoder.<path>…`, an optional `.alpha`; and
//!   diffusers' older attention-processor form
//!   `unet.<attn>.processor.to_q_lora.down.weight`.
//!
//! Each module's update is `W += scale · (alpha / r) · up · down` (`up · down`
//! taken over the rank, the trailing kernel dims folded in), with `alpha = r`
//! when the file gives none, as kohya's own merge does. `scale` is the task's
//! `lora.weight` / 100: the reference network passes that weight to a
//! diffusers argument that ignores it, so every reference LoRA runs at full
//! strength; Hydrogen applies the weight, as the field promises and as every
//! other Stable Diffusion front end does.
//!
//! Merging on the host in f32 with a fixed summation order makes the merged
//! weights the same bits on every node, whatever its backend.

use crate::device::Backend;
use crate::error::{Error, Result};
use crate::weights::{Precision, Weights};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The model a LoRA module adapts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Unet,
    TextEncoder,
}

/// How a module is named in the file, hence how it is found in the model.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ModuleName {
    /// kohya: the module path with every `.` written `_`.
    Flat(String),
    /// diffusers / PEFT: the module path itself.
    Dotted(String),
}

/// One module's low-rank pair, as stored.
#[derive(Debug, Default)]
struct Pair {
    down: Option<(Vec<f32>, Vec<usize>)>,
    up: Option<(Vec<f32>, Vec<usize>)>,
    alpha: Option<f32>,
    /// The file's name of the module, for messages.
    label: String,
}

/// A parsed LoRA file: its updates, not yet matched to a model.
#[derive(Debug)]
pub struct Lora {
    path: PathBuf,
    modules: BTreeMap<(Target, ModuleName), Pair>,
}

/// The merged updates for one model, by the base tensor they change.
pub type Deltas = HashMap<String, Vec<f32>>;

impl Lora {
    /// Reads a LoRA safetensors file. Every tensor must be a part of a
    /// known layout: an unknown key is an error that names it (and counts the
    /// others), never a silently ignored update.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = Weights::open(
            "LoRA",
            &[path.to_owned()],
            &Backend::Cpu.device(),
            Precision::F32,
        )?;
        let names: Vec<String> = file.names().map(str::to_owned).collect();
        let mut modules: BTreeMap<(Target, ModuleName), Pair> = BTreeMap::new();
        let mut unknown = Vec::new();
        for name in names {
            let Some((target, module, part)) = parse_key(&name) else {
                unknown.push(name);
                continue;
            };
            let shape = file.shape_of(&name).expect("listed").to_vec();
            let values = file.read(&name, &shape)?;
            let label = match &module {
                ModuleName::Flat(m) | ModuleName::Dotted(m) => m.clone(),
            };
            let pair = modules.entry((target, module)).or_default();
            pair.label = label;
            match part {
                Part::Down => pair.down = Some((values, shape)),
                Part::Up => pair.up = Some((values, shape)),
                Part::Alpha => {
                    if values.len() != 1 {
                        return Err(lora_error(path, format!("`{name}` is not a scalar")));
                    }
                    pair.alpha = Some(values[0]);
                }
            }
        }
        if let Some(first) = unknown.iter().min() {
            return Err(lora_error(
                path,
                format!(
                    "{} tensor(s) are not LoRA weights of a layout this engine reads \
                     (kohya or diffusers/PEFT, UNet and text encoder), e.g. `{first}`",
                    unknown.len()
                ),
            ));
        }
        if modules.is_empty() {
            return Err(lora_error(path, "holds no LoRA weights".into()));
        }
        for pair in modules.values() {
            if pair.down.is_none() || pair.up.is_none() {
                return Err(lora_error(
                    path,
                    format!("module `{}` lacks its down or up weight", pair.label),
                ));
            }
        }
        Ok(Self {
            path: path.to_owned(),
            modules,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file changes `target` at all.
    pub fn touches(&self, target: Target) -> bool {
        self.modules.keys().any(|(t, _)| *t == target)
    }

    /// The updates to `target`'s tensors at `scale`, keyed by the names in
    /// `base` (the model's opened weights). A module the model does not have,
    /// or whose shapes do not fit its layer, is an error naming it.
    pub fn deltas(&self, target: Target, base: &Weights, scale: f32) -> Result<Deltas> {
        let index = ModuleIndex::new(target, base);
        let mut deltas = Deltas::new();
        for ((t, module), pair) in &self.modules {
            if *t != target {
                continue;
            }
            let tensor = index.find(module).ok_or_else(|| {
                lora_error(
                    &self.path,
                    format!(
                        "module `{}` names no layer of the model's {}",
                        pair.label,
                        base.component()
                    ),
                )
            })?;
            let shape = base.shape_of(&tensor).expect("indexed from the weights");
            let delta = merge(pair, shape, scale).map_err(|why| {
                lora_error(
                    &self.path,
                    format!(
                        "module `{}` does not fit `{tensor}` {shape:?}: {why}",
                        pair.label
                    ),
                )
            })?;
            deltas.insert(tensor, delta);
        }
        Ok(deltas)
    }
}

fn lora_error(path: &Path, message: String) -> Error {
    Error::Config {
        path: path.to_owned(),
        message: format!("LoRA: {message}"),
    }
}

#[derive(Clone, Copy)]
enum Part {
    Down,
    Up,
    Alpha,
}

/// `(target, module, part)` of a LoRA tensor name, or `None` for a name no
/// known layout has.
fn parse_key(name: &str) -> Option<(Target, ModuleName, Part)> {
    // kohya
    for (prefix, target) in [
        ("lora_unet_", Target::Unet),
        ("lora_te_", Target::TextEncoder),
    ] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let (module, part) = split_part(
                rest,
                &[
                    (".lora_down.weight", Part::Down),
                    (".lora_up.weight", Part::Up),
                    (".alpha", Part::Alpha),
                ],
            )?;
            return Some((target, ModuleName::Flat(module.to_owned()), part));
        }
    }
    // diffusers / PEFT
    for (prefix, target) in [
        ("unet.", Target::Unet),
        ("text_encoder.", Target::TextEncoder),
    ] {
        if let Some(rest) = name.strip_prefix(prefix) {
            if let Some((module, part)) = split_part(
                rest,
                &[
                    (".lora_A.weight", Part::Down),
                    (".lora_B.weight", Part::Up),
                    (".alpha", Part::Alpha),
                ],
            ) {
                return Some((target, ModuleName::Dotted(module.to_owned()), part));
            }
            return attn_processor_key(rest).map(|(m, p)| (target, ModuleName::Dotted(m), p));
        }
    }
    None
}

fn split_part<'a>(name: &'a str, parts: &[(&str, Part)]) -> Option<(&'a str, Part)> {
    parts.iter().find_map(|(suffix, part)| {
        let module = name.strip_suffix(suffix)?;
        (!module.is_empty()).then_some((module, *part))
    })
}

/// diffusers' attention-processor form: `<attn>.processor.to_q_lora.down.weight`
/// (UNet) or `<attn>.to_q_lora.down.weight` (text encoder, CLIP's
/// `q_proj`…`out_proj`).
fn attn_processor_key(rest: &str) -> Option<(String, Part)> {
    let (head, part) = split_part(
        rest,
        &[(".down.weight", Part::Down), (".up.weight", Part::Up)],
    )?;
    let (attn, layer) = head.rsplit_once('.')?;
    let unet_layer = match layer {
        "to_q_lora" => "to_q",
        "to_k_lora" => "to_k",
        "to_v_lora" => "to_v",
        "to_out_lora" => "to_out.0",
        _ => return None,
    };
    Some(match attn.strip_suffix(".processor") {
        Some(attn) => (format!("{attn}.{unet_layer}"), part),
        None => {
            let clip_layer = match unet_layer {
                "to_out.0" => "out_proj".to_owned(),
                other => format!("{}_proj", &other[3..]),
            };
            (format!("{attn}.{clip_layer}"), part)
        }
    })
}

/// The model's weight tensors by both spellings of their module path.
struct ModuleIndex {
    by_name: HashMap<String, String>,
}

impl ModuleIndex {
    fn new(target: Target, base: &Weights) -> Self {
        let mut by_name = HashMap::new();
        for tensor in base.names() {
            let Some(module) = tensor.strip_suffix(".weight") else {
                continue;
            };
            let module = normalize(target, module);
            by_name.insert(
                format!("flat:{}", module.replace('.', "_")),
                tensor.to_owned(),
            );
            by_name.insert(format!("dotted:{module}"), tensor.to_owned());
        }
        Self { by_name }
    }

    fn find(&self, module: &ModuleName) -> Option<String> {
        let key = match module {
            ModuleName::Flat(m) => format!("flat:{}", normalize_flat(m)),
            ModuleName::Dotted(m) => format!("dotted:{}", normalize(Target::Unet, m)),
        };
        self.by_name
            .get(&key)
            .or_else(|| match module {
                // A text-encoder path with or without CLIP's `text_model.`.
                ModuleName::Dotted(m) => self
                    .by_name
                    .get(&format!("dotted:{}", normalize(Target::TextEncoder, m))),
                ModuleName::Flat(_) => None,
            })
            .cloned()
    }
}

/// CLIP checkpoints name their tensors with or without `text_model.`
/// (transformers 5 drops it); LoRA files carry it. Match without.
fn normalize(target: Target, module: &str) -> &str {
    match target {
        Target::TextEncoder => module.strip_prefix("text_model.").unwrap_or(module),
        Target::Unet => module,
    }
}

fn normalize_flat(module: &str) -> &str {
    module.strip_prefix("text_model_").unwrap_or(module)
}

/// `scale · (alpha / r) · up · down`, shaped as the base tensor `shape`.
fn merge(pair: &Pair, shape: &[usize], scale: f32) -> std::result::Result<Vec<f32>, String> {
    let (down, down_shape) = pair.down.as_ref().expect("checked at open");
    let (up, up_shape) = pair.up.as_ref().expect("checked at open");
    let rank = *down_shape.first().ok_or("down weight has no dims")?;
    let out = *shape.first().ok_or("base tensor has no dims")?;
    let total: usize = shape.iter().product();
    if rank == 0 || up.len() != out * rank || up_shape.first() != Some(&out) {
        return Err(format!("up weight {up_shape:?} is not [{out}, {rank}]"));
    }
    let cols = total / out;
    if down.len() != rank * cols {
        return Err(format!(
            "down weight {down_shape:?} does not map the layer's {cols} inputs to rank {rank}"
        ));
    }
    let alpha = pair.alpha.unwrap_or(rank as f32);
    let factor = scale * alpha / rank as f32;
    let mut delta = vec![0.0f32; total];
    delta.par_chunks_mut(cols).enumerate().for_each(|(o, row)| {
        for (j, value) in row.iter_mut().enumerate() {
            let mut sum = 0.0f32;
            for k in 0..rank {
                sum += up[o * rank + k] * down[k * cols + j];
            }
            *value = factor * sum;
        }
    });
    Ok(delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_name_the_same_modules() {
        let cases = [
            (
                "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
                Target::Unet,
                ModuleName::Flat("down_blocks_0_attentions_0_proj_in".into()),
            ),
            (
                "lora_te_text_model_encoder_layers_0_mlp_fc1.alpha",
                Target::TextEncoder,
                ModuleName::Flat("text_model_encoder_layers_0_mlp_fc1".into()),
            ),
            (
                "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight",
                Target::Unet,
                ModuleName::Dotted("mid_block.attentions.0.transformer_blocks.0.attn2.to_k".into()),
            ),
            (
                "unet.up_blocks.1.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight",
                Target::Unet,
                ModuleName::Dotted("up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0".into()),
            ),
            (
                "text_encoder.text_model.encoder.layers.3.self_attn.to_k_lora.down.weight",
                Target::TextEncoder,
                ModuleName::Dotted("text_model.encoder.layers.3.self_attn.k_proj".into()),
            ),
        ];
        for (key, target, module) in cases {
            let (t, m, _) = parse_key(key).unwrap_or_else(|| panic!("{key} parses"));
            assert_eq!((t, m), (target, module), "{key}");
        }
        for foreign in [
            "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight",
            "lora_unet_x.dora_scale",
            "unet.x.lora_magnitude_vector",
            "model.diffusion_model.input_blocks.1.weight",
        ] {
            assert!(
                parse_key(foreign).is_none(),
                "{foreign} is not a known layout"
            );
        }
    }

    fn pair(down: (Vec<f32>, Vec<usize>), up: (Vec<f32>, Vec<usize>), alpha: Option<f32>) -> Pair {
        Pair {
            down: Some(down),
            up: Some(up),
            alpha,
            label: "m".into(),
        }
    }

    #[test]
    fn the_update_is_scale_times_alpha_over_rank_times_up_down() {
        // rank 2, 3 inputs, 2 outputs
        let down = (vec![1.0, 2.0, 3.0, -1.0, 0.5, 0.0], vec![2, 3]);
        let up = (vec![1.0, 0.0, 2.0, 1.0], vec![2, 2]);
        // up·down = [[1,2,3],[1,4.5,6]]
        let full = merge(&pair(down.clone(), up.clone(), None), &[2, 3], 1.0).unwrap();
        assert_eq!(
            full,
            vec![1.0, 2.0, 3.0, 1.0, 4.5, 6.0],
            "alpha absent means alpha = rank"
        );
        let scaled = merge(&pair(down, up, Some(1.0)), &[2, 3], 0.8).unwrap();
        let want: Vec<f32> = full.iter().map(|v| v * 0.8 * 0.5).collect();
        assert_eq!(scaled, want);
    }

    #[test]
    fn conv_updates_fold_the_kernel_into_the_inputs() {
        // LoCon: down [r=1, in=2, 3, 3], up [out=2, 1, 1, 1] on a [2, 2, 3, 3] conv.
        let down: Vec<f32> = (0..18).map(|i| i as f32).collect();
        let up = vec![1.0, -2.0];
        let d = merge(
            &pair(
                (down.clone(), vec![1, 2, 3, 3]),
                (up, vec![2, 1, 1, 1]),
                None,
            ),
            &[2, 2, 3, 3],
            1.0,
        )
        .unwrap();
        assert_eq!(&d[..18], &down[..]);
        assert_eq!(d[18 + 5], -10.0);
    }

    #[test]
    fn shapes_that_do_not_fit_the_layer_are_named() {
        let p = pair((vec![0.0; 6], vec![2, 3]), (vec![0.0; 4], vec![2, 2]), None);
        let err = merge(&p, &[2, 4], 1.0).unwrap_err();
        assert!(err.contains("down weight [2, 3]"), "{err}");
        let err = merge(&p, &[3, 3], 1.0).unwrap_err();
        assert!(err.contains("up weight [2, 2]"), "{err}");
    }
}
