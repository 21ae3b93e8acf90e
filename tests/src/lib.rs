//! Helpers shared by the integration tests: a dev node, funded keys, deployed contracts.
