//! Contract bundles (`*.contract` from `cargo contract build`) and
//! instantiating them with `Contracts::instantiate_with_code`.

use super::client::{
    account_of, again_after_drop, weight_value, with_margin, ChainClient, Included,
    GAS_MARGIN_PERCENT,
};
use super::contracts_api::{
    instantiate_request, Code, ContractResult, InstantiateReturnValue, StorageDeposit, Weight,
};
use super::error::ChainError;
use super::message::selector;
use codec::Decode;
use hydrogen_types::AccountId;
use std::path::Path;
use subxt_signer::sr25519::Keypair;

/// A cargo-contract bundle: the Wasm code and the ink! metadata.
#[derive(Debug, Clone)]
pub struct ContractBundle {
    pub wasm: Vec<u8>,
    /// The ink! metadata (the bundle without `source.wasm`'s role).
    pub metadata: serde_json::Value,
    /// Where it was read from, for messages.
    pub origin: String,
}

impl ContractBundle {
    /// Reads a `.contract` file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ChainError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ChainError::Bundle {
            path: origin.clone(),
            reason: e.to_string(),
        })?;
        Self::from_json(&text, origin)
    }

    /// Parses a bundle's JSON text; `origin` names it in errors.
    pub fn from_json(text: &str, origin: impl Into<String>) -> Result<Self, ChainError> {
        let origin = origin.into();
        let bad = |reason: String| ChainError::Bundle {
            path: origin.clone(),
            reason,
        };
        let metadata: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let wasm_hex = metadata
            .pointer("/source/wasm")
            .and_then(|w| w.as_str())
            .ok_or_else(|| bad("no source.wasm (a .json metadata file is not a bundle; use the .contract file)".into()))?;
        let wasm = hex::decode(wasm_hex.trim_start_matches("0x"))
            .map_err(|e| bad(format!("source.wasm: {e}")))?;
        if !wasm.starts_with(b"\0asm") {
            return Err(bad("source.wasm is not a Wasm module".into()));
        }
        Ok(ContractBundle {
            wasm,
            metadata,
            origin,
        })
    }

    /// `(label, selector)` of every message in the metadata.
    pub fn messages(&self) -> Vec<(String, [u8; 4])> {
        self.labelled("/spec/messages")
    }

    /// `(label, selector)` of every constructor in the metadata.
    pub fn constructors(&self) -> Vec<(String, [u8; 4])> {
        self.labelled("/spec/constructors")
    }

    fn labelled(&self, pointer: &str) -> Vec<(String, [u8; 4])> {
        let Some(items) = self.metadata.pointer(pointer).and_then(|m| m.as_array()) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| {
                let label = item.get("label")?.as_str()?.to_string();
                let bytes =
                    hex::decode(item.get("selector")?.as_str()?.trim_start_matches("0x")).ok()?;
                Some((label, bytes.try_into().ok()?))
            })
            .collect()
    }

    /// The messages in `expected` that the bundle lacks or gives another
    /// selector than `blake2b(name)[..4]`, as readable lines. Empty when the
    /// bundle matches.
    pub fn interface_mismatches(&self, expected: &[&str]) -> Vec<String> {
        let messages = self.messages();
        expected
            .iter()
            .filter_map(
                |name| match messages.iter().find(|(label, _)| label == name) {
                    None => Some(format!("message {name} is not in {}", self.origin)),
                    Some((_, s)) if *s != selector(name) => Some(format!(
                        "message {name} has selector 0x{} in {}, the SDK computes 0x{}",
                        hex::encode(s),
                        self.origin,
                        hex::encode(selector(name))
                    )),
                    Some(_) => None,
                },
            )
            .collect()
    }
}

/// A freshly instantiated contract.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub address: AccountId,
    /// The dry run's estimate.
    pub gas_required: Weight,
    pub storage_deposit: StorageDeposit,
    pub included: Included,
}

impl ChainClient {
    /// Instantiates `code` with constructor input `data` (selector ‖ args)
    /// and `salt`: dry-runs `ContractsApi_instantiate` for the gas and
    /// storage deposit, submits `Contracts::instantiate_with_code`, waits for
    /// finality and returns the address from `Contracts::Instantiated`.
    pub async fn instantiate_with_code(
        &self,
        signer: &Keypair,
        code: Vec<u8>,
        data: Vec<u8>,
        salt: Vec<u8>,
    ) -> Result<Deployed, ChainError> {
        let origin = account_of(signer);
        let what = "instantiate_with_code";
        let request = instantiate_request(
            &origin,
            0,
            None,
            None,
            &Code::Upload(code.clone()),
            &data,
            &salt,
        );
        let bytes = again_after_drop(|| {
            self.rpc()
                .state_call("ContractsApi_instantiate", Some(&request), None)
        })
        .await
        .map_err(|e| ChainError::rpc("dry run of instantiate_with_code", e))?;
        let dry = ContractResult::<InstantiateReturnValue>::decode(&bytes)?;
        let returned = match dry.result {
            Ok(returned) => returned,
            Err(error) => {
                return Err(ChainError::Dispatch {
                    what: "dry run of instantiate_with_code".into(),
                    error: self.describe_dispatch_error(&error).await,
                    debug_message: dry.debug_message,
                })
            }
        };
        if returned.result.reverted() {
            return Err(ChainError::Reverted {
                message: "constructor",
                data: hex::encode(&returned.result.data),
                debug_message: dry.debug_message,
            });
        }
        let gas_limit = dry.gas_required.with_margin(GAS_MARGIN_PERCENT);
        let call = subxt::dynamic::tx(
            "Contracts",
            "instantiate_with_code",
            (
                0u128,
                weight_value(gas_limit),
                Some(with_margin(dry.storage_deposit.charge())),
                code,
                data,
                salt,
            ),
        );
        let included = self.submit_extrinsic(signer, &call, what).await?;
        let address = included
            .events
            .iter()
            .filter(|e| e.pallet == "Contracts" && e.name == "Instantiated")
            .find_map(|e| {
                <(AccountId, AccountId)>::decode(&mut &e.fields[..])
                    .ok()
                    .map(|(_, contract)| contract)
            })
            .ok_or(ChainError::MissingEvent {
                what: what.into(),
                event: "Contracts::Instantiated",
            })?;
        Ok(Deployed {
            address,
            gas_required: dry.gas_required,
            storage_deposit: dry.storage_deposit,
            included,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUNDLE: &str = r#"{
        "source": {"hash": "0x00", "wasm": "0x0061736d01000000"},
        "spec": {
            "constructors": [{"label": "new", "selector": "0x9bae9d5e"}],
            "messages": [
                {"label": "PSP22::balance_of", "selector": "0x6568382f"},
                {"label": "create_task", "selector": "0x00000000"}
            ]
        }
    }"#;

    #[test]
    fn reads_code_and_selectors() {
        let bundle = ContractBundle::from_json(BUNDLE, "test").unwrap();
        assert_eq!(bundle.wasm, b"\0asm\x01\0\0\0");
        assert_eq!(
            bundle.constructors(),
            vec![("new".to_string(), selector("new"))]
        );
        assert_eq!(bundle.messages().len(), 2);
        let mismatches =
            bundle.interface_mismatches(&["PSP22::balance_of", "create_task", "queue"]);
        assert_eq!(mismatches.len(), 2, "{mismatches:?}");
        assert!(mismatches[0].contains("create_task"));
        assert!(mismatches[1].contains("queue is not in test"));
    }

    #[test]
    fn rejects_metadata_without_code() {
        let err = ContractBundle::from_json(r#"{"spec": {}}"#, "x.json").unwrap_err();
        assert!(err.to_string().contains("no source.wasm"), "{err}");
        assert!(ContractBundle::from_json("not json", "x").is_err());
    }
}
