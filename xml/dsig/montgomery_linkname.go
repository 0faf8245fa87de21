//go:build !math_big_pure_go

package dsig

import (
	"math/big"
	_ "unsafe" // for go:linkname
)

// math/big's assembly loops for vectors of words, which it keeps reachable by go:linkname
// for packages outside the standard library (go.dev/issue/67401, arith_decl.go): the
// Montgomery arithmetic of montgomery.go runs on them, as math/big's own does, but for its
// row operation addMulVVW, which is the package's own assembly on amd64 (montgomery_amd64.go)
// and math/big's elsewhere (montgomery_addmul.go).

// subVV sets z = x − y and returns the borrow; the three have the same length.
//
//go:linkname subVV math/big.subVV
//go:noescape
func subVV(z, x, y []big.Word) (c big.Word)

// shlVU sets z = x << s, for 0 < s < W, and returns the bits shifted out.
//
//go:linkname shlVU math/big.shlVU
//go:noescape
func shlVU(z, x []big.Word, s uint) (c big.Word)
