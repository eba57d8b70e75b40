// header_gate: a Proxy-Wasm HTTP filter on proxy-wasm-go-sdk.
//
// Plugin configuration (JSON): {"require": "<header>", "tag": "<text>"}.
//   - a request without the required header gets a local 403 response;
//   - otherwise the filter tags the request (x-gate: <tag>), drops x-debug, and logs the path;
//   - a request body containing "DROP TABLE" gets a local 400 response;
//   - responses are tagged (x-gate-tag: <tag>) and lose their "server" header.
package main

import (
	"encoding/json"
	"strings"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

func main() {}

func init() {
	proxywasm.SetVMContext(&vm{})
}

type vm struct {
	types.DefaultVMContext
}

func (*vm) NewPluginContext(contextID uint32) types.PluginContext {
	return &plugin{require: "x-api-key", tag: "gate"}
}

type config struct {
	Require string `json:"require"`
	Tag     string `json:"tag"`
}

type plugin struct {
	types.DefaultPluginContext
	require string
	tag     string
}

func (p *plugin) OnPluginStart(size int) types.OnPluginStartStatus {
	if size > 0 {
		data, err := proxywasm.GetPluginConfiguration()
		if err != nil {
			proxywasm.LogCriticalf("cannot read the plugin configuration: %v", err)
			return types.OnPluginStartStatusFailed
		}
		var c config
		if err := json.Unmarshal(data, &c); err != nil {
			proxywasm.LogCriticalf("invalid plugin configuration: %v", err)
			return types.OnPluginStartStatusFailed
		}
		if c.Require != "" {
			p.require = strings.ToLower(c.Require)
		}
		if c.Tag != "" {
			p.tag = c.Tag
		}
	}
	if err := proxywasm.SetTickPeriodMilliSeconds(60000); err != nil {
		proxywasm.LogWarnf("no tick: %v", err)
	}
	proxywasm.LogInfof("gate on %s, tag %s", p.require, p.tag)
	return types.OnPluginStartStatusOK
}

func (p *plugin) NewHttpContext(contextID uint32) types.HttpContext {
	return &request{plugin: p}
}

type request struct {
	types.DefaultHttpContext
	plugin *plugin
}

func (r *request) OnHttpRequestHeaders(numHeaders int, endOfStream bool) types.Action {
	if _, err := proxywasm.GetHttpRequestHeader(r.plugin.require); err != nil {
		proxywasm.LogWarnf("refused: no %s header", r.plugin.require)
		body := []byte("missing " + r.plugin.require + "\n")
		headers := [][2]string{{"content-type", "text/plain"}}
		if err := proxywasm.SendHttpResponse(403, headers, body, -1); err != nil {
			proxywasm.LogErrorf("cannot send the local response: %v", err)
		}
		return types.ActionPause
	}
	path, _ := proxywasm.GetHttpRequestHeader(":path")
	proxywasm.LogInfof("request to %s", path)
	_ = proxywasm.RemoveHttpRequestHeader("x-debug")
	if err := proxywasm.AddHttpRequestHeader("x-gate", r.plugin.tag); err != nil {
		proxywasm.LogErrorf("cannot tag the request: %v", err)
	}
	return types.ActionContinue
}

func (r *request) OnHttpRequestBody(bodySize int, endOfStream bool) types.Action {
	if !endOfStream {
		return types.ActionPause
	}
	body, err := proxywasm.GetHttpRequestBody(0, bodySize)
	if err != nil || !strings.Contains(string(body), "DROP TABLE") {
		return types.ActionContinue
	}
	proxywasm.LogWarn("refused: suspicious body")
	if err := proxywasm.SendHttpResponse(400, nil, []byte("bad request\n"), -1); err != nil {
		proxywasm.LogErrorf("cannot send the local response: %v", err)
	}
	return types.ActionPause
}

func (r *request) OnHttpResponseHeaders(numHeaders int, endOfStream bool) types.Action {
	_ = proxywasm.RemoveHttpResponseHeader("server")
	if err := proxywasm.AddHttpResponseHeader("x-gate-tag", r.plugin.tag); err != nil {
		proxywasm.LogErrorf("cannot tag the response: %v", err)
	}
	return types.ActionContinue
}

func (r *request) OnHttpStreamDone() {
	proxywasm.LogDebug("stream done")
}
