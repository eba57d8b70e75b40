//! registry-verifier: an embeddable verifier for registry-tool plugin registries (format 2).
//!
//! A host pins the registry's root once, then each session refreshes (root chain walk,
//! signed top document, expiry, rollback), resolves `name@range`, installs verified releases
//! into a plugin directory with the lockfile the Python client writes, and verifies installed
//! plugins offline before loading them. See docs/client-rust.md.

pub mod client;
pub mod documents;
pub mod error;
pub mod fetch;
pub mod fsx;
#[cfg(feature = "http")]
mod http1;
pub mod json;
pub mod lockfile;
pub mod manifest;
pub mod minisign;
pub mod names;
pub mod range;
mod registry_url;
pub mod root;
mod schema;
pub mod wasm;

pub use client::{
    load_plugin, read_lockfile, verify_installed, InstallOptions, LoadedPlugin, Session, TrustState, VerifiedRelease,
    Verifier,
};
pub use error::{Class, Error, Result, TrustCode, TrustError};
#[cfg(feature = "http")]
pub use fetch::HttpTransport;
pub use fetch::{FileTransport, Response, Transport, TransportError};
pub use range::{Range, Requirement};
