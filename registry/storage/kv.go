package storage

import "github.com/plugboard/plugboard/abi"

// Limits of the plugboard_kv import (ABI.md section 5). A scope's size is the sum of
// len(key) + len(value) over its entries, expired ones included until they are purged.
const (
	MaxKVKeyBytes   = abi.KVMaxKeyBytes
	MaxKVValueBytes = abi.KVMaxValueBytes
	MaxKVScopeBytes = abi.KVMaxScopeBytes
)
