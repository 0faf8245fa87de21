//go:build !amd64 || math_big_pure_go

package dsig

import "math/big"

// reduceRows is reduceRowsGo: only amd64 has it in assembly (montgomery_amd64.go).
func reduceRows(t, m []big.Word, k0 big.Word) big.Word { return reduceRowsGo(t, m, k0) }
