//! What the bridge tells apps about the network (`GET /v1/network`: its
//! account and terms, nodes by status and by VRAM, the queue, the fees its
//! recent tasks paid) and about the models its tasks used (`GET /v1/models`),
//! so an app can pick a model, a size of GPU and a fee that will be served.

use crate::api::{authenticate, json, ApiError, ErrorBody};
use crate::store::TaskRow;
use crate::Shared;
use http::StatusCode;
use hydrogen_sdk::chain::ss58;
use hydrogen_sdk::task::{ModelFamily, TaskArgs};
use hydrogen_sdk::types::format_tokens;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;
use warp::reply::Response;

/// The VRAM sizes (GB) capacity is reported for: what SD 1.x/2.x (8) and
/// SDXL (10) tasks ask for, then common GPU memory sizes.
const VRAM_TIERS: [u32; 7] = [8, 10, 12, 16, 24, 48, 80];
/// How many of the bridge's newest tasks the fee summary covers.
const FEE_WINDOW: i64 = 50;
/// How many of the bridge's newest tasks the model listing covers.
const MODEL_WINDOW: i64 = 1000;

/// The app account, the network's terms and its state now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NetworkView {
    /// The account the bridge pays from (SS58).
    pub account: String,
    /// The hydrogen contract (SS58).
    pub contract: String,
    /// The account's token balance, smallest unit (decimal string).
    pub balance: String,
    /// The same in tokens, for people.
    pub balance_tokens: String,
    /// The smallest fee per image, smallest unit (decimal string).
    pub min_fee_per_image: String,
    /// Milliseconds nodes have to commit a task's result.
    pub timeout_ms: u64,
    /// Milliseconds a task may wait in the queue before it expires.
    pub queue_ttl_ms: u64,
    /// Joined nodes by status.
    pub nodes: NodesView,
    /// Available nodes with at least each common VRAM size: a task needing
    /// `min_vram_gb` starts once three such nodes are free.
    pub capacity: Vec<CapacityView>,
    /// Tasks waiting in the chain's queue for nodes.
    pub queue_length: u64,
    /// The fees per image of this bridge's newest tasks (none yet: null).
    pub recent_fees: Option<FeesView>,
}

/// Joined nodes by status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodesView {
    /// Free to be selected.
    pub available: u32,
    /// Running a task.
    pub busy: u32,
    /// Paused by their runners.
    pub paused: u32,
}

/// Available nodes with at least `min_vram_gb`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CapacityView {
    pub min_vram_gb: u32,
    pub available_nodes: u32,
}

/// Fees per image, smallest unit (decimal strings), over `tasks` tasks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FeesView {
    pub tasks: usize,
    pub min: String,
    pub median: String,
    pub max: String,
    /// Of those tasks, how many completed.
    pub completed: usize,
}

/// The state of the network now.
#[utoipa::path(
    get,
    path = "/v1/network",
    responses(
        (status = 200, body = NetworkView),
        (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)
    )
)]
pub(crate) async fn network(
    shared: Arc<Shared>,
    auth: Option<String>,
) -> Result<Response, ApiError> {
    authenticate(&shared, auth).await?;
    let client = shared.client.get().ok_or_else(ApiError::not_connected)?;
    let balance = client.balance().await.map_err(ApiError::app)?;
    let (params, counts, queue, capacity) = client
        .connection()
        .call(|h| async move {
            let mut capacity = Vec::new();
            for min_vram_gb in VRAM_TIERS {
                capacity.push(CapacityView {
                    min_vram_gb,
                    available_nodes: h.available_capacity(min_vram_gb).await?,
                });
            }
            Ok((
                h.params().await?,
                h.node_counts().await?,
                h.queue().await?,
                capacity,
            ))
        })
        .await
        .map_err(|e| ApiError::app(e.into()))?;
    let recent = shared.store.recent_tasks(FEE_WINDOW).await?;
    Ok(json(
        &NetworkView {
            account: ss58(&shared.account),
            contract: ss58(&shared.contract),
            balance: balance.to_string(),
            balance_tokens: format_tokens(balance),
            min_fee_per_image: params.min_fee.to_string(),
            timeout_ms: params.timeout_ms,
            queue_ttl_ms: params.queue_ttl_ms,
            nodes: NodesView {
                available: counts.available,
                busy: counts.busy,
                paused: counts.paused,
            },
            capacity,
            queue_length: queue.len() as u64,
            recent_fees: fees(&recent),
        },
        StatusCode::OK,
    ))
}

/// Per image, the fees of the tasks that reached the chain.
fn fees(rows: &[TaskRow]) -> Option<FeesView> {
    let mut per_image: Vec<(u128, bool)> = rows
        .iter()
        .filter(|r| r.task_id.is_some())
        .filter_map(|r| {
            let args = TaskArgs::from_json(&r.args).ok()?;
            let images = u128::from(args.num_images().max(1));
            Some((r.fee / images, r.state == crate::TaskState::Completed))
        })
        .collect();
    if per_image.is_empty() {
        return None;
    }
    per_image.sort_unstable();
    Some(FeesView {
        tasks: per_image.len(),
        min: per_image[0].0.to_string(),
        median: per_image[per_image.len() / 2].0.to_string(),
        max: per_image[per_image.len() - 1].0.to_string(),
        completed: per_image.iter().filter(|(_, done)| *done).count(),
    })
}

/// The base models and LoRAs this bridge's newest tasks asked for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelsView {
    /// The base model of OpenAI-style requests that name none.
    pub default_model: String,
    /// Most used first.
    pub base_models: Vec<ModelSeen>,
    /// Most used first.
    pub loras: Vec<LoraSeen>,
}

/// A base model (Hugging Face id) and how its tasks went.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelSeen {
    pub id: String,
    /// `sd15`, `sd2` or `sdxl`.
    pub family: String,
    pub tasks: usize,
    pub completed: usize,
    /// Milliseconds since the Unix epoch.
    pub last_used_ms: i64,
}

/// A LoRA (Hugging Face id or download URL) and how its tasks went.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoraSeen {
    pub model: String,
    /// The weights file inside a Hugging Face repository (empty: diffusers' default).
    pub weight_file_name: String,
    pub tasks: usize,
    pub completed: usize,
    pub last_used_ms: i64,
}

/// The models and LoRAs seen in this bridge's newest 1,000 tasks (every
/// key's), most used first.
#[utoipa::path(
    get,
    path = "/v1/models",
    responses((status = 200, body = ModelsView), (status = 401, body = ErrorBody))
)]
pub(crate) async fn models(
    shared: Arc<Shared>,
    auth: Option<String>,
) -> Result<Response, ApiError> {
    authenticate(&shared, auth).await?;
    let rows = shared.store.recent_tasks(MODEL_WINDOW).await?;
    Ok(json(
        &seen(&rows, &shared.config.default_model),
        StatusCode::OK,
    ))
}

/// Tallies `rows` (newest first) by base model and by LoRA.
pub fn seen(rows: &[TaskRow], default_model: &str) -> ModelsView {
    let mut models: BTreeMap<String, ModelSeen> = BTreeMap::new();
    let mut loras: BTreeMap<(String, String), LoraSeen> = BTreeMap::new();
    for row in rows {
        let Ok(args) = TaskArgs::from_json(&row.args) else {
            continue;
        };
        let completed = usize::from(row.state == crate::TaskState::Completed);
        let id = args.base_model.name().to_owned();
        let m = models.entry(id.clone()).or_insert_with(|| ModelSeen {
            id,
            family: family_name(args.base_model.family()).to_owned(),
            tasks: 0,
            completed: 0,
            last_used_ms: row.created_at,
        });
        tally(
            &mut m.tasks,
            &mut m.completed,
            &mut m.last_used_ms,
            completed,
            row.created_at,
        );
        if let Some(lora) = &args.lora {
            let key = (lora.model.clone(), lora.weight_file_name.clone());
            let l = loras.entry(key).or_insert_with(|| LoraSeen {
                model: lora.model.clone(),
                weight_file_name: lora.weight_file_name.clone(),
                tasks: 0,
                completed: 0,
                last_used_ms: row.created_at,
            });
            tally(
                &mut l.tasks,
                &mut l.completed,
                &mut l.last_used_ms,
                completed,
                row.created_at,
            );
        }
    }
    let mut base_models: Vec<ModelSeen> = models.into_values().collect();
    base_models.sort_by(|a, b| {
        b.tasks
            .cmp(&a.tasks)
            .then(b.last_used_ms.cmp(&a.last_used_ms))
    });
    let mut loras: Vec<LoraSeen> = loras.into_values().collect();
    loras.sort_by(|a, b| {
        b.tasks
            .cmp(&a.tasks)
            .then(b.last_used_ms.cmp(&a.last_used_ms))
    });
    ModelsView {
        default_model: default_model.to_owned(),
        base_models,
        loras,
    }
}

/// Counts one more task (`completed`: 0 or 1) used at `at`.
fn tally(tasks: &mut usize, done: &mut usize, last: &mut i64, completed: usize, at: i64) {
    *tasks += 1;
    *done += completed;
    *last = (*last).max(at);
}

fn family_name(family: ModelFamily) -> &'static str {
    match family {
        ModelFamily::Sd1 => "sd15",
        ModelFamily::Sd2 => "sd2",
        ModelFamily::Sdxl => "sdxl",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskState;

    fn row(args: &str, fee: u128, state: TaskState, at: i64, task_id: Option<u64>) -> TaskRow {
        let mut row = TaskRow::submitting("key_a", args.into(), fee, 0);
        row.state = state;
        row.created_at = at;
        row.task_id = task_id;
        row
    }

    fn task(model: &str, lora: Option<&str>, images: u32) -> String {
        let mut args = TaskArgs::new(model, "a red circle");
        args.task_config.num_images = images;
        if let Some(url) = lora {
            args.lora = Some(serde_json::from_value(serde_json::json!({ "model": url })).unwrap());
        }
        String::from_utf8(args.to_canonical_json()).unwrap()
    }

    #[test]
    fn models_are_tallied_most_used_first_with_their_loras() {
        let lora = "https://civitai.com/api/download/models/1";
        let rows = [
            row(
                &task("runwayml/stable-diffusion-v1-5", Some(lora), 1),
                1,
                TaskState::Completed,
                30,
                Some(3),
            ),
            row(
                &task("stabilityai/stable-diffusion-2-1", None, 1),
                1,
                TaskState::Failed,
                20,
                None,
            ),
            row(
                &task("runwayml/stable-diffusion-v1-5", None, 1),
                1,
                TaskState::Aborted,
                10,
                Some(1),
            ),
            row("not a task", 1, TaskState::Failed, 5, None),
        ];
        let seen = seen(&rows, "runwayml/stable-diffusion-v1-5");
        let models: Vec<_> = seen
            .base_models
            .iter()
            .map(|m| {
                (
                    m.id.as_str(),
                    m.family.as_str(),
                    m.tasks,
                    m.completed,
                    m.last_used_ms,
                )
            })
            .collect();
        assert_eq!(
            models,
            [
                ("runwayml/stable-diffusion-v1-5", "sd15", 2, 1, 30),
                ("stabilityai/stable-diffusion-2-1", "sd2", 1, 0, 20),
            ]
        );
        assert_eq!(seen.loras.len(), 1);
        assert_eq!(
            (seen.loras[0].model.as_str(), seen.loras[0].tasks),
            (lora, 1)
        );
    }

    #[test]
    fn fees_are_per_image_over_the_tasks_that_reached_the_chain() {
        assert!(fees(&[]).is_none());
        let rows = [
            row(&task("m", None, 4), 40, TaskState::Completed, 3, Some(3)),
            row(&task("m", None, 1), 30, TaskState::Aborted, 2, Some(2)),
            row(&task("m", None, 1), 20, TaskState::Completed, 1, Some(1)),
            // Never created: paid nothing, says nothing about prices.
            row(&task("m", None, 1), 1000, TaskState::Failed, 0, None),
        ];
        let f = fees(&rows).unwrap();
        assert_eq!(
            (
                f.tasks,
                f.min.as_str(),
                f.median.as_str(),
                f.max.as_str(),
                f.completed
            ),
            (3, "10", "20", "30", 2)
        );
    }
}
