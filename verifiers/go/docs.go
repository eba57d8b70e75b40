package verifier

import "regexp"

var (
	sha256RE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	fileNameRE   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,255}$`)
	permissionRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
)
