// greet_go: an Extism plugin on the official Go PDK.
//
// Built twice from this source (scripts/build_samples.py):
//   - c-shared (a WASI reactor): the host calls _initialize once, then `greet` ([] -> [i32]);
//   - std (a WASI command): `_start` runs main, which greets the same way.
//
// greet: "<greeting>, <input>!" with the greeting from the plugin config (default "Hello");
// empty input is an error; a var counts the calls on one plugin instance.
package main

import (
	"strconv"

	"github.com/extism/go-pdk"
)

//go:wasmexport greet
func greet() int32 {
	name := pdk.InputString()
	if name == "" {
		pdk.SetErrorString("greet: the input is empty; pass a name")
		return 1
	}
	greeting, ok := pdk.GetConfig("greeting")
	if !ok {
		greeting = "Hello"
	}
	calls := 1
	if prev := pdk.GetVar("calls"); prev != nil {
		n, _ := strconv.Atoi(string(prev))
		calls = n + 1
	}
	pdk.SetVar("calls", []byte(strconv.Itoa(calls)))
	pdk.Log(pdk.LogInfo, "greeting "+name+" (call "+strconv.Itoa(calls)+")")
	pdk.OutputString(greeting + ", " + name + "!")
	return 0
}

func main() {
	greet()
}
