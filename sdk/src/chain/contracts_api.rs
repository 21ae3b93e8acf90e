//! The SCALE shapes of pallet-contracts' runtime API (`ContractsApi_call`,
//! `ContractsApi_instantiate`) as substrate-contracts-node 0.42 encodes them.

use super::error::{take_dispatch_error, ChainError};
use codec::{Compact, Decode, Encode};
use hydrogen_types::{AccountId, Balance};

/// `ReturnFlags::REVERT`: the contract rolled back its state changes.
pub const FLAG_REVERT: u32 = 1;

/// A two-dimensional weight: execution time (picoseconds) and proof size (bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Weight {
    pub ref_time: u64,
    pub proof_size: u64,
}

impl Encode for Weight {
    fn encode_to<W: codec::Output + ?Sized>(&self, dest: &mut W) {
        Compact(self.ref_time).encode_to(dest);
        Compact(self.proof_size).encode_to(dest);
    }
}

impl Decode for Weight {
    fn decode<I: codec::Input>(input: &mut I) -> Result<Self, codec::Error> {
        let ref_time = Compact::<u64>::decode(input)?.0;
        let proof_size = Compact::<u64>::decode(input)?.0;
        Ok(Weight {
            ref_time,
            proof_size,
        })
    }
}

impl Weight {
    /// This weight plus `percent` per cent on both dimensions.
    pub fn with_margin(self, percent: u64) -> Weight {
        let add = |v: u64| v.saturating_add(v / 100 * percent + (v % 100) * percent / 100);
        Weight {
            ref_time: add(self.ref_time),
            proof_size: add(self.proof_size),
        }
    }
}

/// The storage deposit a call charges or refunds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum StorageDeposit {
    Refund(Balance),
    Charge(Balance),
}

impl Default for StorageDeposit {
    fn default() -> Self {
        StorageDeposit::Charge(0)
    }
}

impl StorageDeposit {
    /// What the caller pays (zero for a refund).
    pub fn charge(self) -> Balance {
        match self {
            StorageDeposit::Charge(c) => c,
            StorageDeposit::Refund(_) => 0,
        }
    }
}

/// What a contract execution returned.
#[derive(Debug, Clone, PartialEq, Eq, Decode)]
pub struct ExecReturnValue {
    pub flags: u32,
    pub data: Vec<u8>,
}

impl ExecReturnValue {
    pub fn reverted(&self) -> bool {
        self.flags & FLAG_REVERT != 0
    }
}

/// `ContractResult<Result<R, DispatchError>, Balance, EventRecord>` without
/// the collected events, which the SDK does not need from a dry run.
#[derive(Debug, Clone)]
pub struct ContractResult<R> {
    pub gas_consumed: Weight,
    pub gas_required: Weight,
    pub storage_deposit: StorageDeposit,
    pub debug_message: String,
    /// The return value, or the SCALE bytes of the runtime's `DispatchError`.
    pub result: Result<R, Vec<u8>>,
}

impl<R: Decode> ContractResult<R> {
    pub fn decode(bytes: &[u8]) -> Result<Self, ChainError> {
        let what = "contract dry-run result";
        let input = &mut &bytes[..];
        let gas_consumed = Weight::decode(input).map_err(|e| ChainError::decode(what, e))?;
        let gas_required = Weight::decode(input).map_err(|e| ChainError::decode(what, e))?;
        let storage_deposit =
            StorageDeposit::decode(input).map_err(|e| ChainError::decode(what, e))?;
        let debug = Vec::<u8>::decode(input).map_err(|e| ChainError::decode(what, e))?;
        let result = match u8::decode(input).map_err(|e| ChainError::decode(what, e))? {
            0 => Ok(R::decode(input).map_err(|e| ChainError::decode(what, e))?),
            1 => Err(take_dispatch_error(input)?.to_vec()),
            other => {
                return Err(ChainError::decode(
                    what,
                    format!("bad Result variant {other}"),
                ))
            }
        };
        Ok(ContractResult {
            gas_consumed,
            gas_required,
            storage_deposit,
            debug_message: String::from_utf8_lossy(&debug).into_owned(),
            result,
        })
    }
}

/// `InstantiateReturnValue`: the constructor's return and the new address.
#[derive(Debug, Clone, PartialEq, Eq, Decode)]
pub struct InstantiateReturnValue {
    pub result: ExecReturnValue,
    pub account_id: AccountId,
}

/// Arguments of `ContractsApi_call`.
pub fn call_request(
    origin: &AccountId,
    dest: &AccountId,
    value: Balance,
    gas_limit: Option<Weight>,
    storage_deposit_limit: Option<Balance>,
    input: &[u8],
) -> Vec<u8> {
    (origin, dest, value, gas_limit, storage_deposit_limit, input).encode()
}

/// pallet-contracts' `Code`; variant 1, `Existing(code_hash)`, is not used.
#[derive(Debug, Clone, Encode)]
pub enum Code {
    Upload(Vec<u8>),
}

/// Arguments of `ContractsApi_instantiate`.
pub fn instantiate_request(
    origin: &AccountId,
    value: Balance,
    gas_limit: Option<Weight>,
    storage_deposit_limit: Option<Balance>,
    code: &Code,
    data: &[u8],
    salt: &[u8],
) -> Vec<u8> {
    (
        origin,
        value,
        gas_limit,
        storage_deposit_limit,
        code,
        data,
        salt,
    )
        .encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_is_two_compacts() {
        let w = Weight {
            ref_time: 1,
            proof_size: 1 << 20,
        };
        assert_eq!(w.encode(), [vec![4], Compact(1u64 << 20).encode()].concat());
        assert_eq!(Weight::decode(&mut &w.encode()[..]).unwrap(), w);
    }

    #[test]
    fn margin_rounds_and_saturates() {
        let w = Weight {
            ref_time: 1000,
            proof_size: 55,
        }
        .with_margin(10);
        assert_eq!(
            w,
            Weight {
                ref_time: 1100,
                proof_size: 60
            }
        );
        assert_eq!(
            Weight {
                ref_time: u64::MAX,
                proof_size: 0
            }
            .with_margin(10)
            .ref_time,
            u64::MAX
        );
    }

    fn exec_result(result: &[u8], trailing_events: bool) -> Vec<u8> {
        let mut bytes = Weight {
            ref_time: 10,
            proof_size: 20,
        }
        .encode();
        bytes.extend(
            Weight {
                ref_time: 30,
                proof_size: 40,
            }
            .encode(),
        );
        bytes.extend(StorageDeposit::Charge(5).encode());
        bytes.extend(b"dbg".to_vec().encode());
        bytes.extend(result);
        bytes.push(u8::from(trailing_events)); // Option<Vec<EventRecord>>: Some(..) left unread
        bytes
    }

    #[test]
    fn decodes_a_successful_call() {
        let mut ok = vec![0u8];
        ok.extend((1u32, vec![1u8, 2]).encode());
        let r = ContractResult::<ExecReturnValue>::decode(&exec_result(&ok, true)).unwrap();
        assert_eq!(
            r.gas_required,
            Weight {
                ref_time: 30,
                proof_size: 40
            }
        );
        assert_eq!(r.storage_deposit.charge(), 5);
        assert_eq!(r.debug_message, "dbg");
        let ret = r.result.unwrap();
        assert!(ret.reverted());
        assert_eq!(ret.data, vec![1, 2]);
    }

    #[test]
    fn decodes_a_dispatch_error() {
        let err = [1u8, 3, 8, 11, 0, 0, 0];
        let r = ContractResult::<ExecReturnValue>::decode(&exec_result(&err, false)).unwrap();
        assert_eq!(r.result.unwrap_err(), vec![3, 8, 11, 0, 0, 0]);
    }

    #[test]
    fn call_request_layout() {
        let req = call_request(&[1; 32].into(), &[2; 32].into(), 0, None, Some(7), &[9, 9]);
        let mut expected = vec![1u8; 32];
        expected.extend([2u8; 32]);
        expected.extend(0u128.encode());
        expected.push(0); // gas_limit: None
        expected.push(1);
        expected.extend(7u128.encode());
        expected.extend([8, 9, 9]); // compact length 2, then the input
        assert_eq!(req, expected);
    }
}
