package dsig_test

import (
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"slices"
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

// TestAddMulVVW holds each implementation of addMulVVW that this machine runs to math/big, on
// vectors of 0 to 130 words (past every unrolled loop and every remainder) of random words,
// all-ones words, whose sums carry through the whole row, and a mix of the two, with
// multipliers at the ends of the range and random ones; and checks that it writes z only, and
// none of the words around it.
func TestAddMulVVW(t *testing.T) {
	t.Parallel()
	const ones, guard = ^big.Word(0), big.Word(0x5eed)
	loops := dsig.AddMulVVWLoops()
	t.Logf("%d implementations", len(loops))
	for name, addMul := range loops {
		t.Run(name, func(t *testing.T) {
			r := mrand.New(mrand.NewPCG(7, 8))
			words := func(n, kind int) []big.Word {
				w := make([]big.Word, n)
				for i := range w {
					switch {
					case kind == 1, kind == 2 && r.IntN(2) == 0:
						w[i] = ones
					default:
						w[i] = big.Word(r.Uint64())
					}
				}
				return w
			}
			checked := 0
			for n := 0; n <= 130; n++ {
				for kind := range 9 {
					for _, y := range []big.Word{0, 1, ones, ones - 1, big.Word(r.Uint64())} {
						z0, x := words(n, kind%3), words(n, kind/3)
						buf := append(append([]big.Word{guard}, z0...), guard)
						z := buf[1 : n+1]
						xCopy := append([]big.Word(nil), x...)
						c := addMul(z, x, y)

						want := new(big.Int).Mul(new(big.Int).SetBits(xCopy), new(big.Int).SetBits([]big.Word{y}))
						want.Add(want, new(big.Int).SetBits(append([]big.Word(nil), z0...)))
						got := new(big.Int).SetBits(append(append([]big.Word(nil), z...), c))
						if got.Cmp(want) != 0 {
							t.Fatalf("%d words, z = %x, x = %x, y = %x: got %x, want %x", n, z0, x, y, got, want)
						}
						if buf[0] != guard || buf[n+1] != guard {
							t.Fatalf("%d words: the words around z were overwritten: %x, %x", n, buf[0], buf[n+1])
						}
						for i := range x {
							if x[i] != xCopy[i] {
								t.Fatalf("%d words: x was overwritten", n)
							}
						}
						checked++
					}
				}
			}
			t.Logf("%d rows checked", checked)
		})
	}
}

// TestReduceRows holds each implementation of reduceRows that this machine runs to
// reduceRowsGo, on moduli of 1 to 130 words (past every unrolled loop and every remainder) of
// random words, all-ones words, whose sums carry through whole rows and from row to row, and a
// mix of the two, with t of the same kinds; with k0 = −m⁻¹ mod 2^W, as reduce passes it, and
// with random ones. It checks the words and the carry, that t·R⁻¹ ≡ the result mod m for the
// true k0, and that the implementation writes t only, and none of the words around it.
func TestReduceRows(t *testing.T) {
	t.Parallel()
	const ones, guard = ^big.Word(0), big.Word(0x5eed)
	loops := dsig.ReduceRowsLoops()
	t.Logf("%d implementations", len(loops))
	for name, reduceRows := range loops {
		t.Run(name, func(t *testing.T) {
			r := mrand.New(mrand.NewPCG(9, 10))
			words := func(n, kind int) []big.Word {
				w := make([]big.Word, n)
				for i := range w {
					switch {
					case kind == 1, kind == 2 && r.IntN(2) == 0:
						w[i] = ones
					default:
						w[i] = big.Word(r.Uint64())
					}
				}
				return w
			}
			two64 := new(big.Int).Lsh(big.NewInt(1), 64)
			checked, carries := 0, 0
			for n := 1; n <= 130; n++ {
				for kind := range 9 {
					m := words(n, kind/3)
					m[0] |= 1
					M := new(big.Int).SetBits(append([]big.Word(nil), m...))
					inv := new(big.Int).ModInverse(new(big.Int).SetBits([]big.Word{m[0]}), two64)
					k0 := big.Word(new(big.Int).Sub(two64, inv).Uint64()) // −m⁻¹ mod 2^64
					for _, k := range []big.Word{k0, big.Word(r.Uint64())} {
						t0 := words(2*n, kind%3)
						buf := append(append([]big.Word{guard}, t0...), guard)
						tw := buf[1 : 2*n+1]
						mCopy := append([]big.Word(nil), m...)
						c := reduceRows(tw, m, k)

						want := append([]big.Word(nil), t0...)
						wantC := dsig.ReduceRowsGo(want, mCopy, k)
						if c != wantC || !slices.Equal(tw, want) {
							t.Fatalf("%d words, kind %d, k0 %x: got %x carry %d, want %x carry %d\nm = %x\nt = %x", n, kind, k, tw, c, want, wantC, mCopy, t0)
						}
						if k == k0 {
							for i := range n {
								if tw[i] != 0 {
									t.Fatalf("%d words, kind %d: word %d of t is %x, not 0", n, kind, i, tw[i])
								}
							}
							// got·R ≡ t (mod m), got being t[n:2n] and the carry
							got := new(big.Int).SetBits(append(append([]big.Word(nil), tw[n:]...), c))
							got.Lsh(got, uint(64*n)).Sub(got, new(big.Int).SetBits(append([]big.Word(nil), t0...)))
							if got.Mod(got, M).Sign() != 0 {
								t.Fatalf("%d words, kind %d: the result is not t·R⁻¹ mod m", n, kind)
							}
						}
						if buf[0] != guard || buf[2*n+1] != guard {
							t.Fatalf("%d words: the words around t were overwritten: %x, %x", n, buf[0], buf[2*n+1])
						}
						if !slices.Equal(m, mCopy) {
							t.Fatalf("%d words: m was overwritten", n)
						}
						checked++
						carries += int(c)
					}
				}
			}
			if carries == 0 {
				t.Fatal("no reduction carried out of t")
			}
			t.Logf("%d reductions checked, %d carrying out of t", checked, carries)
		})
	}
}
