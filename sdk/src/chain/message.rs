//! Contract messages: selector ‖ SCALE arguments, and how to read what the
//! message returns (`Result<T, LangError>`, with `T` itself a `Result` for
//! fallible messages).

use super::error::{ChainError, LangError, Psp22Error};
use codec::{Decode, Encode};
use std::marker::PhantomData;

/// ink!'s selector of a message or constructor: the first four bytes of
/// Blake2b-256 of its name (`"PSP22::transfer"` for trait messages).
pub fn selector(name: &str) -> [u8; 4] {
    let hash = hydrogen_types::blake2_256(name.as_bytes());
    [hash[0], hash[1], hash[2], hash[3]]
}

/// How a message reports failure inside its `Ok` return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fallibility {
    /// Returns `T` directly.
    Infallible,
    /// Returns `Result<T, hydrogen_types::Error>`.
    Hydrogen,
    /// Returns `Result<T, Psp22Error>`.
    Psp22,
}

/// A call of one contract message that returns `T` on success.
#[derive(Debug, Clone)]
pub struct Message<T> {
    name: &'static str,
    input: Vec<u8>,
    fallibility: Fallibility,
    _returns: PhantomData<fn() -> T>,
}

impl<T: Decode> Message<T> {
    fn with(name: &'static str, args: impl Encode, fallibility: Fallibility) -> Self {
        let mut input = selector(name).to_vec();
        args.encode_to(&mut input);
        Message {
            name,
            input,
            fallibility,
            _returns: PhantomData,
        }
    }

    /// A message returning `T` (a view such as `PSP22::balance_of`). `args`
    /// is a tuple of the arguments in declaration order.
    pub fn infallible(name: &'static str, args: impl Encode) -> Self {
        Self::with(name, args, Fallibility::Infallible)
    }

    /// A message returning `Result<T, hydrogen_types::Error>`.
    pub fn fallible(name: &'static str, args: impl Encode) -> Self {
        Self::with(name, args, Fallibility::Hydrogen)
    }

    /// A PSP22 message returning `Result<T, PSP22Error>`.
    pub fn psp22(name: &'static str, args: impl Encode) -> Self {
        Self::with(name, args, Fallibility::Psp22)
    }

    /// The message's name (`"create_task"`, `"PSP22::transfer"`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Selector ‖ SCALE-encoded arguments.
    pub fn input(&self) -> &[u8] {
        &self.input
    }

    /// Reads the return data of an execution that did not trap: the value,
    /// or an error naming the contract's refusal.
    pub fn decode_return(
        &self,
        data: &[u8],
        reverted: bool,
        debug_message: &str,
    ) -> Result<T, ChainError> {
        let message = self.name;
        let what = || format!("the return value of {message}");
        let inner = match data.split_first() {
            Some((0, rest)) => rest,
            Some((1, rest)) => {
                let error =
                    LangError::decode(&mut &rest[..]).map_err(|e| ChainError::decode(what(), e))?;
                return Err(ChainError::Lang { message, error });
            }
            _ => {
                return Err(ChainError::Reverted {
                    message,
                    data: hex::encode(data),
                    debug_message: debug_message.into(),
                })
            }
        };
        let input = &mut &inner[..];
        let value = match self.fallibility {
            Fallibility::Infallible => {
                T::decode(input).map_err(|e| ChainError::decode(what(), e))?
            }
            Fallibility::Hydrogen => match Result::<T, hydrogen_types::Error>::decode(input)
                .map_err(|e| ChainError::decode(what(), e))?
            {
                Ok(v) => v,
                Err(error) => return Err(ChainError::Contract { message, error }),
            },
            Fallibility::Psp22 => {
                match Result::<T, Psp22Error>::decode(input)
                    .map_err(|e| ChainError::decode(what(), e))?
                {
                    Ok(v) => v,
                    Err(error) => return Err(ChainError::Token { message, error }),
                }
            }
        };
        if !input.is_empty() {
            return Err(ChainError::decode(
                what(),
                format!("{} bytes left over", input.len()),
            ));
        }
        if reverted {
            // A revert whose data reads as success: report it rather than trust it.
            return Err(ChainError::Reverted {
                message,
                data: hex::encode(data),
                debug_message: debug_message.into(),
            });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hydrogen_types::Error;

    #[test]
    fn selectors_match_ink() {
        // Well-known ink! / PSP22 selectors.
        assert_eq!(selector("new"), [0x9b, 0xae, 0x9d, 0x5e]);
        assert_eq!(selector("PSP22::balance_of"), [0x65, 0x68, 0x38, 0x2f]);
        assert_eq!(selector("PSP22::transfer"), [0xdb, 0x20, 0xf9, 0xf5]);
        assert_eq!(selector("PSP22::total_supply"), [0x16, 0x2d, 0xf8, 0xc2]);
    }

    #[test]
    fn input_is_selector_then_args() {
        let m = Message::<u128>::infallible("PSP22::balance_of", ([7u8; 32],));
        assert_eq!(&m.input()[..4], &selector("PSP22::balance_of"));
        assert_eq!(&m.input()[4..], &[7u8; 32]);
        let m = Message::<u64>::fallible("create_task", (0u8, [1u8; 32], 8u32, 2u8, 5u128));
        assert_eq!(m.input().len(), 4 + 1 + 32 + 4 + 1 + 16);
    }

    #[test]
    fn reads_values_and_refusals() {
        let m = Message::<u128>::infallible("PSP22::balance_of", ());
        assert_eq!(
            m.decode_return(&Ok::<u128, LangError>(5).encode(), false, "")
                .unwrap(),
            5
        );

        let m = Message::<u64>::fallible("create_task", ());
        let ok = Ok::<Result<u64, Error>, LangError>(Ok(9)).encode();
        assert_eq!(m.decode_return(&ok, false, "").unwrap(), 9);
        let refused = Ok::<Result<u64, Error>, LangError>(Err(Error::FeeTooLow)).encode();
        let err = m.decode_return(&refused, true, "").unwrap_err();
        assert_eq!(err.contract_error(), Some(Error::FeeTooLow));
        assert_eq!(err.to_string(), "contract refused create_task: FeeTooLow");

        let lang = Err::<Result<u64, Error>, LangError>(LangError::CouldNotReadInput).encode();
        assert!(matches!(
            m.decode_return(&lang, true, ""),
            Err(ChainError::Lang { .. })
        ));

        let m = Message::<()>::psp22("PSP22::transfer", ());
        let refused =
            Ok::<Result<(), Psp22Error>, LangError>(Err(Psp22Error::InsufficientBalance)).encode();
        assert_eq!(
            m.decode_return(&refused, true, "").unwrap_err().to_string(),
            "token refused PSP22::transfer: InsufficientBalance"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_value() {
        let m = Message::<u32>::infallible("x", ());
        assert!(m.decode_return(&[0, 1, 0, 0, 0, 9], false, "").is_err());
        assert!(m.decode_return(&[], true, "").is_err());
        assert!(m
            .decode_return(&Ok::<u32, LangError>(1).encode(), true, "")
            .is_err());
    }
}
