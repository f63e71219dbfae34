//! Web3 Secret Storage v3 keystores (placeholder until the module lands).
