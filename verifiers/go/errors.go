// Package verifier verifies plugins of a registry-tool registry (registry format 2) for Go hosts:
// it pins a root, walks the root chain, checks the signed top document, resolves a requirement,
// fetches and verifies a release into a plugin directory and re-verifies installed plugins.
//
// The rules are those of docs/trust.md and the registry format 2 contract; verdicts are the
// error classes of the conformance suite (Class constants below), so a Go host reaches the same
// verdict as the Python client on the same bytes.
package verifier

import (
	"errors"
	"fmt"
)

// Class is one of the fixed error classes of the conformance protocol.
type Class string

// The error classes (conformance/README.md is the authoritative list).
const (
	ClassRollback            Class = "rollback"
	ClassFreeze              Class = "freeze"
	ClassRootExpired         Class = "root-expired"
	ClassRootChain           Class = "root-chain"
	ClassBadSignature        Class = "bad-signature"
	ClassUnsupportedFormat   Class = "unsupported-format"
	ClassMalformed           Class = "malformed"
	ClassWrongRegistry       Class = "wrong-registry"
	ClassDigestMismatch      Class = "digest-mismatch"
	ClassEndlessData         Class = "endless-data"
	ClassSlowRetrieval       Class = "slow-retrieval"
	ClassMixAndMatch         Class = "mix-and-match"
	ClassWrongSoftware       Class = "wrong-software"
	ClassMaintainerSignature Class = "maintainer-signature"
	ClassPathTraversal       Class = "path-traversal"
	ClassUnsafePath          Class = "unsafe-path"
	ClassNotFound            Class = "not-found"
	ClassNoMatchingVersion   Class = "no-matching-version"
	ClassBadRequirement      Class = "bad-requirement"
	ClassPermissionRequired  Class = "permission-required"
	ClassNotPinned           Class = "not-pinned"
	ClassInstalledTampered   Class = "installed-tampered"
	ClassLockfile            Class = "lockfile"
	ClassNetwork             Class = "network"
	ClassUndeclaredImport    Class = "undeclared-import"
	ClassDependencyConflict  Class = "dependency-conflict"
	ClassDependencyCycle     Class = "dependency-cycle"
	ClassRepublished         Class = "republished"
)

// usageClasses are environment or usage problems (exit code 2), not attacks.
var usageClasses = map[Class]bool{
	ClassNotFound: true, ClassNoMatchingVersion: true, ClassBadRequirement: true,
	ClassPermissionRequired: true, ClassNotPinned: true, ClassNetwork: true, ClassDependencyConflict: true,
}

// Error is every refusal of this package: a class, what happened, where, and how to fix it.
type Error struct {
	Class Class
	// Code is the finer rule of docs/trust.md section 6 when there is one (e.g. "revoked-key").
	Code  string
	What  string
	Where string
	Fix   string
	// cause is the error this refusal reports, when there is one worth matching with errors.Is
	// (context.Canceled for a caller's cancellation, context.DeadlineExceeded for a deadline).
	cause error
}

// Unwrap returns the underlying error (context.Canceled, context.DeadlineExceeded), or nil.
func (e *Error) Unwrap() error { return e.cause }

func (e *Error) Error() string {
	s := string(e.Class) + ": " + e.What
	if e.Where != "" {
		s += " (" + e.Where + ")"
	}
	if e.Fix != "" {
		s += "; fix: " + e.Fix
	}
	return s
}

// ExitCode is the process exit code for this refusal: 2 for usage/environment, 1 otherwise.
func (e *Error) ExitCode() int {
	if usageClasses[e.Class] {
		return 2
	}
	return 1
}

func newErr(class Class, code, where, fix, format string, args ...any) *Error {
	return &Error{Class: class, Code: code, What: fmt.Sprintf(format, args...), Where: where, Fix: fix}
}

// AsError returns the *Error in err's chain, or wraps any other error as a network/environment
// error; nil for a nil err (no refusal).
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Class: ClassNetwork, What: err.Error()}
}

// trustError is a rule of docs/trust.md section 6 (code such as "bad-signature", "revoked-key");
// callers map it to a conformance class with withClass.
func trustError(code, where, fix, format string, args ...any) *Error {
	return &Error{Code: code, What: fmt.Sprintf(format, args...), Where: where, Fix: fix}
}

// withClass gives a trust rule error the conformance class of the step that failed.
func withClass(err error, class Class) error {
	var e *Error
	if errors.As(err, &e) && e.Class == "" {
		c := *e
		c.Class = class
		return &c
	}
	return err
}

// classedInput is what the exported parsers return: every refusal a *Error with a class, bad
// input being malformed (a rule error keeps its Code, What, Where and Fix). The package's own
// steps call the unexported parsers and give a rule error the class of the step that failed.
func classedInput(err error, where string) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Class != "" {
			return e
		}
		c := *e
		c.Class = ClassMalformed
		return &c
	}
	return &Error{Class: ClassMalformed, What: err.Error(), Where: where, cause: err,
		Fix: "the input is not in the format's form; check where it came from"}
}
