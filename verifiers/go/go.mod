module github.com/registry-tool/registry-tool/verifiers/go

go 1.26.0

require (
	github.com/Masterminds/semver/v3 v3.5.0
	github.com/pelletier/go-toml/v2 v2.2.4
	github.com/tetratelabs/wazero v1.12.0
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
)
