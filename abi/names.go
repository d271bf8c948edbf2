package abi

// Version is the ABI version this package implements; a manifest's "abi" field must equal it.
const Version = 1

// Exports a plugin may provide (ABI.md section 2).
const (
	ExportDescribe = "plugboard_describe"
	ExportInvoke   = "plugboard_invoke"
	ExportPoll     = "plugboard_poll"
	ExportWebhook  = "plugboard_webhook"
	ExportOnTimer  = "plugboard_on_timer"
)

// Import modules a plugin may import from (ABI.md section 1).
const (
	// ModuleExtismEnv is the Extism kernel: input, output, memory, logging, vars and config.
	ModuleExtismEnv = "extism:host/env"
	// ModuleWASI is WASI preview 1 (clocks, random, stdout/stderr).
	ModuleWASI = "wasi_snapshot_preview1"
	// ModuleHost holds Plugboard's own host functions.
	ModuleHost = "extism:host/user"
)

// Host functions in [ModuleHost] (ABI.md section 5). Each takes and returns one i64: the offset
// of an Extism memory block holding a JSON document.
const (
	ImportHTTP       = "plugboard_http"
	ImportCredential = "plugboard_credential"
	ImportTimer      = "plugboard_timer"
	ImportKV         = "plugboard_kv"
)

// HostImports lists every function a plugin may import from [ModuleHost].
var HostImports = []string{ImportHTTP, ImportCredential, ImportTimer, ImportKV}

// Auth types a manifest may list in auth.types.
const (
	AuthNone   = "none"
	AuthAPIKey = "api_key"
	AuthBasic  = "basic"
	AuthOAuth2 = "oauth2"
)

// Trigger kinds.
const (
	TriggerPoll    = "poll"
	TriggerWebhook = "webhook"
)

// Webhook lifecycle steps carried in WebhookRequest.Op.
const (
	WebhookSubscribe   = "subscribe"
	WebhookRenew       = "renew"
	WebhookUnsubscribe = "unsubscribe"
	WebhookReceive     = "receive"
)
