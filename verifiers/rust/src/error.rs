//! Error classes: the conformance classes (`Class`, FORMAT 2 section 9) that a host and the
//! runner see, and the finer trust codes of docs/trust.md section 6 (`TrustCode`) that the
//! signature and root rules produce before the client maps them to a class.

use std::fmt;

/// The fixed list of error classes shared by every verifier (conformance/README.md). A later
/// version of the protocol may add a class: a host's `match` keeps a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Class {
    Rollback,
    Freeze,
    RootExpired,
    RootChain,
    BadSignature,
    UnsupportedFormat,
    Malformed,
    WrongRegistry,
    DigestMismatch,
    EndlessData,
    SlowRetrieval,
    MixAndMatch,
    WrongSoftware,
    MaintainerSignature,
    PathTraversal,
    UnsafePath,
    NotFound,
    NoMatchingVersion,
    BadRequirement,
    PermissionRequired,
    NotPinned,
    InstalledTampered,
    UndeclaredImport,
    Lockfile,
    Network,
    DependencyConflict,
    DependencyCycle,
    Republished,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        use Class::*;
        match self {
            Rollback => "rollback",
            Freeze => "freeze",
            RootExpired => "root-expired",
            RootChain => "root-chain",
            BadSignature => "bad-signature",
            UnsupportedFormat => "unsupported-format",
            Malformed => "malformed",
            WrongRegistry => "wrong-registry",
            DigestMismatch => "digest-mismatch",
            EndlessData => "endless-data",
            SlowRetrieval => "slow-retrieval",
            MixAndMatch => "mix-and-match",
            WrongSoftware => "wrong-software",
            MaintainerSignature => "maintainer-signature",
            PathTraversal => "path-traversal",
            UnsafePath => "unsafe-path",
            NotFound => "not-found",
            NoMatchingVersion => "no-matching-version",
            BadRequirement => "bad-requirement",
            PermissionRequired => "permission-required",
            NotPinned => "not-pinned",
            InstalledTampered => "installed-tampered",
            UndeclaredImport => "undeclared-import",
            Lockfile => "lockfile",
            Network => "network",
            DependencyConflict => "dependency-conflict",
            DependencyCycle => "dependency-cycle",
            Republished => "republished",
        }
    }

    /// Process exit code: 1 when the checked thing is bad, 2 for usage or environment.
    pub fn exit_code(self) -> i32 {
        use Class::*;
        match self {
            NotFound | NoMatchingVersion | BadRequirement | PermissionRequired | NotPinned | Network
            | DependencyConflict => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: its class, and a one-paragraph message saying what, where and how to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub class: Class,
    pub message: String,
    /// The trust rule that failed, when the refusal comes from docs/trust.md's rules.
    pub trust: Option<TrustCode>,
}

impl Error {
    pub fn new(class: Class, message: impl Into<String>) -> Error {
        Error { class, message: message.into(), trust: None }
    }

    /// A trust-rule failure reported under a conformance class, with context in front.
    pub fn from_trust(class: Class, context: &str, err: TrustError) -> Error {
        Error { class, message: format!("{}: {} ({})", context, err.message, err.code.as_str()), trust: Some(err.code) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Error codes of docs/trust.md section 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrustCode {
    MalformedKey,
    MalformedSignature,
    LegacySignature,
    KeyMismatch,
    BadSignature,
    RootFormat,
    RootVersion,
    RootContinuity,
    RootExpired,
    UnauthorizedSigner,
    RevokedKey,
    ThresholdNotMet,
    PluginNameMismatch,
    InvalidPluginName,
    TrustedCommentMismatch,
    ArtifactMismatch,
    EmptyPolicy,
}

impl TrustCode {
    pub fn as_str(self) -> &'static str {
        use TrustCode::*;
        match self {
            MalformedKey => "malformed-key",
            MalformedSignature => "malformed-signature",
            LegacySignature => "legacy-signature",
            KeyMismatch => "key-mismatch",
            BadSignature => "bad-signature",
            RootFormat => "root-format",
            RootVersion => "root-version",
            RootContinuity => "root-continuity",
            RootExpired => "root-expired",
            UnauthorizedSigner => "unauthorized-signer",
            RevokedKey => "revoked-key",
            ThresholdNotMet => "threshold-not-met",
            PluginNameMismatch => "plugin-name-mismatch",
            InvalidPluginName => "invalid-plugin-name",
            TrustedCommentMismatch => "trusted-comment-mismatch",
            ArtifactMismatch => "artifact-mismatch",
            EmptyPolicy => "empty-policy",
        }
    }
}

/// A failure of one of the trust rules (pure functions over bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustError {
    pub code: TrustCode,
    pub message: String,
}

impl TrustError {
    pub fn new(code: TrustCode, message: impl Into<String>) -> TrustError {
        TrustError { code, message: message.into() }
    }
}

impl fmt::Display for TrustError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for TrustError {}
