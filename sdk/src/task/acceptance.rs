//! Whether uploaded arguments fit the task created on chain: the one rule
//! the relay applies before storing arguments and every node applies before
//! running them. One definition, so an honest node never votes
//! `InvalidArgs` on arguments the relay accepted.

use super::{args_hash_of, TaskArgs};
use crate::types::TaskInfo;

/// Why uploaded arguments do not fit their task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Not the bytes the creator committed to on chain: the uploader's (or
    /// a relay's) fault, never a reason to vote the task invalid.
    #[error("the arguments hash to 0x{found} but task {task}'s args_hash is 0x{expected}")]
    HashMismatch {
        task: u64,
        found: String,
        expected: String,
    },
    /// The committed bytes themselves are unusable: a node votes `InvalidArgs`.
    #[error("{0}")]
    Invalid(String),
}

impl Rejection {
    /// Whether the committed arguments are at fault (a vote), not their transport.
    pub fn is_vote(&self) -> bool {
        matches!(self, Rejection::Invalid(_))
    }
}

/// Checks `body` against `task`: the on-chain hash, UTF-8 task JSON valid
/// under the schema, the image count the fee was paid for, and a VRAM
/// floor high enough for the model family (a task whose `min_vram_gb` is
/// below what its model needs would be drawn onto nodes that cannot run it).
pub fn accept(task: &TaskInfo, body: &[u8]) -> Result<TaskArgs, Rejection> {
    let hash = args_hash_of(body);
    if hash != task.args_hash {
        return Err(Rejection::HashMismatch {
            task: task.id,
            found: hex::encode(hash),
            expected: hex::encode(task.args_hash),
        });
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| Rejection::Invalid(format!("the arguments are not UTF-8: {e}")))?;
    let args = TaskArgs::from_json(text)
        .map_err(|e| Rejection::Invalid(format!("invalid task arguments: {e}")))?;
    if args.num_images() != u32::from(task.num_images) {
        return Err(Rejection::Invalid(format!(
            "the arguments ask for {} images but task {} was created for {}",
            args.num_images(),
            task.id,
            task.num_images
        )));
    }
    if args.min_vram_gb() > task.min_vram_gb {
        return Err(Rejection::Invalid(format!(
            "the model needs {} GB of VRAM but task {} was created with min_vram_gb {}: \
             it would be drawn onto nodes that cannot run it",
            args.min_vram_gb(),
            task.id,
            task.min_vram_gb
        )));
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{TaskStatus, TaskType};

    fn task(body: &[u8], num_images: u8, min_vram_gb: u32) -> TaskInfo {
        TaskInfo {
            id: 3,
            creator: [1; 32].into(),
            task_type: TaskType::StableDiffusion,
            args_hash: args_hash_of(body),
            min_vram_gb,
            num_images,
            fee: 1,
            status: TaskStatus::Running,
            created_at: 0,
            deadline: 0,
            nodes: vec![],
            result: None,
            uploader: None,
            distance_threshold: 10,
            audit_of: None,
            audit: None,
        }
    }

    #[test]
    fn arguments_must_fit_the_task_on_chain() {
        let mut sd15 = TaskArgs::new("runwayml/stable-diffusion-v1-5", "a cat");
        sd15.task_config.num_images = 1;
        let body = sd15.to_canonical_json();
        assert_eq!(accept(&task(&body, 1, 8), &body).map(|_| ()), Ok(()));
        let wrong = accept(&task(&body, 1, 8), b"{}").unwrap_err();
        assert!(
            !wrong.is_vote(),
            "other bytes are transport's fault: {wrong}"
        );
        let count = accept(&task(&body, 2, 8), &body).unwrap_err();
        assert!(
            count.is_vote() && count.to_string().contains("2"),
            "{count}"
        );
        let low = accept(&task(&body, 1, 4), &body).unwrap_err();
        assert!(low.is_vote() && low.to_string().contains("VRAM"), "{low}");
        let mut xl = TaskArgs::new("stabilityai/stable-diffusion-xl-base-1.0", "a cat");
        xl.task_config.num_images = 1;
        let body = xl.to_canonical_json();
        let xl = accept(&task(&body, 1, 10), &body).unwrap_err();
        assert!(xl.is_vote() && xl.to_string().contains("SDXL"), "{xl}");
    }
}
