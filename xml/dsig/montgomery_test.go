package dsig_test

import (
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"testing"

	"github.com/evoucher/evoucher/xml/dsig"
)

// randBelow returns a number of r below n, any of them.
func randBelow(r *mrand.Rand, n *big.Int) *big.Int {
	x := new(big.Int)
	for i := 0; i < n.BitLen()+64; i += 64 {
		x.Lsh(x, 64).Or(x, new(big.Int).SetUint64(r.Uint64()))
	}
	return x.Mod(x, n)
}

// TestMontExp holds montgomery.go's exponentiation to math/big's Exp on random moduli of the
// sizes it serves (3072 and 4096 bits, and the others up to the 8192 accepted, some not
// filling their last word), on moduli just below a power of two and just above one (whose
// intermediate values are often above N, or carry out of their words), and on a one-word
// modulus; with bases at the ends of the range and random ones, and exponents from 3 to
// 2³¹ − 1. The moduli need only be odd: Montgomery arithmetic does not care whether they
// are an RSA key's.
func TestMontExp(t *testing.T) {
	t.Parallel()
	r := mrand.New(mrand.NewPCG(5, 6))
	one := big.NewInt(1)
	pow2 := func(n int) *big.Int { return new(big.Int).Lsh(one, uint(n)) }
	odd := func(bits int) *big.Int {
		n := randBelow(r, pow2(bits))
		return n.SetBit(n, bits-1, 1).SetBit(n, 0, 1)
	}
	moduli := map[string]*big.Int{
		"OneWord":      new(big.Int).Sub(pow2(64), big.NewInt(59)),
		"TwoToThe3072": new(big.Int).Sub(pow2(3072), one),
		"TwoToThe4096": new(big.Int).Sub(pow2(4096), big.NewInt(3)),
		"AboveTwoTo3008": func() *big.Int {
			n := randBelow(r, pow2(100))
			return n.Add(n, pow2(3008)).SetBit(n, 0, 1) // the last of its 48 words is 1
		}(),
	}
	for _, bits := range []int{3072, 3072, 3072, 4096, 4096, 4096, 1024, 2048, 2049, 3000, 3080, 8192} {
		moduli[fmt.Sprintf("Random%d_%d", bits, len(moduli))] = odd(bits)
	}
	exponents := []uint{65537, 3, 17, 1<<31 - 1}
	for range 4 {
		exponents = append(exponents, uint(r.Uint32()>>1|3))
	}
	checked := 0
	for name, n := range moduli {
		bases := []*big.Int{big.NewInt(0), one, big.NewInt(2), new(big.Int).Sub(n, one), new(big.Int).Sub(n, big.NewInt(2)),
			new(big.Int).Rsh(n, 1), new(big.Int).Mod(pow2(64*((n.BitLen()+63)/64)), n)}
		random := 200
		if n.BitLen() > 4096 {
			random = 20
		}
		for range random {
			bases = append(bases, randBelow(r, n))
		}
		for i, x := range bases {
			es := exponents
			if i >= 10 {
				es = []uint{exponents[i%len(exponents)]}
			}
			for _, e := range es {
				want := new(big.Int).Exp(x, new(big.Int).SetUint64(uint64(e)), n)
				if got := dsig.MontExp(n, x, e); got.Cmp(want) != 0 {
					t.Fatalf("%s (%d bits), base %d, exponent %d: got %x, want %x\nN = %x\nx = %x", name, n.BitLen(), i, e, got, want, n, x)
				}
				checked++
			}
		}
	}
	t.Logf("%d exponentiations checked", checked)
}
