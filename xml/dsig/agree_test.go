package dsig_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/xml/dsig"
)

// verdict is what a verifier decided about a document, in comparable form.
type verdict struct {
	ok        bool
	reason    string // the refusal's reason
	canonical string // the signed element's canonical form, when accepted
}

func (v verdict) String() string {
	if v.ok {
		return "accepted"
	}
	return "refused (" + v.reason + ")"
}

func decide(t testing.TB, verify func(*etree.Document, dsig.Trust) (*etree.Element, any, error), b []byte) verdict {
	el, _, err := verify(mustParse(t, b), acceptAll)
	if err != nil {
		if evoucher.KindOf(err) != evoucher.KindInvalid {
			t.Fatalf("refusal of kind %s, want invalid: %v", evoucher.KindOf(err), err)
		}
		return verdict{reason: evoucher.ReasonOf(err)}
	}
	return verdict{ok: true, canonical: string(canonical(t, el))}
}

func verifyNew(doc *etree.Document, trust dsig.Trust) (*etree.Element, any, error) {
	return dsig.Verify(doc, trust)
}

// cached is one Verifier for all the documents of the differential tests, so that its
// certificate cache serves documents other than the one that filled it.
var cached = dsig.NewVerifier()

func verifyCached(doc *etree.Document, trust dsig.Trust) (*etree.Element, any, error) {
	return cached.Verify(doc, trust)
}

func verifyRef(doc *etree.Document, trust dsig.Trust) (*etree.Element, any, error) {
	return dsig.VerifyGoxmldsig(doc, trust)
}

// agree fails unless Verify, a Verifier that has seen other documents and goxmldsig's
// Validate (behind the same profile checks) decide alike on b: all accept and return the same
// content, or all refuse for the same reason.
// Documents that etree cannot parse are skipped; it reports whether b was parsed.
func agree(t testing.TB, b []byte) (verdict, bool) {
	t.Helper()
	if etree.NewDocument().ReadFromBytes(b) != nil {
		return verdict{}, false
	}
	got, want := decide(t, verifyNew, b), decide(t, verifyRef, b)
	if got != want {
		t.Fatalf("Verify: %s, goxmldsig: %s, for\n%s", got, want, b)
	}
	if c := decide(t, verifyCached, b); c != got {
		t.Fatalf("Verifier with a certificate cache: %s, Verify: %s, for\n%s", c, got, b)
	}
	agreeRoot(t, b)
	return got, true
}

// agreeRoot fails unless VerifyRoot decides as Verify does on b, and returns the root of the
// element Verify returns, without children.
func agreeRoot(t testing.TB, b []byte) {
	t.Helper()
	full, _, err := cached.Verify(mustParse(t, b), acceptAll)
	head, cert, herr := cached.VerifyRoot(mustParse(t, b), acceptAll)
	switch {
	case err != nil || herr != nil:
		if evoucher.ReasonOf(err) != evoucher.ReasonOf(herr) || head != nil || cert != nil {
			t.Fatalf("VerifyRoot: %v, Verify: %v, for\n%s", herr, err, b)
		}
	case head.Tag != full.Tag || head.Space != full.Space || head.NamespaceURI() != full.NamespaceURI() || len(head.Child) != 0:
		t.Fatalf("VerifyRoot returned <%s> in %q with %d children, Verify <%s> in %q", head.FullTag(), head.NamespaceURI(), len(head.Child), full.FullTag(), full.NamespaceURI())
	case !sameAttrs(head.Attr, full.Attr):
		t.Fatalf("VerifyRoot returned the attributes %v, Verify %v", head.Attr, full.Attr)
	}
}

// agreeCorpus is the saved valid and hostile documents, and the profile's documents signed
// now with a 2048-bit and a 3072-bit key.
func agreeCorpus(t testing.TB) (valid, hostile [][]byte) {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join("testdata", "valid", "*.xml"))
	for _, p := range paths {
		valid = append(valid, mustRead(t, p))
	}
	paths, _ = filepath.Glob(filepath.Join("testdata", "hostile", "*.xml"))
	for _, p := range paths {
		hostile = append(hostile, mustRead(t, p))
	}
	if len(valid) == 0 || len(hostile) < 40 {
		t.Fatalf("%d valid and %d hostile documents in testdata: run go test -update once", len(valid), len(hostile))
	}
	for _, bits := range []int{2048, 3072} {
		key, cert := mustSelfSigned(t, bits)
		b, err := dsig.SignBytes(newBatch(), key, cert)
		if err != nil {
			t.Fatal(err)
		}
		valid = append(valid, b)
	}
	return valid, hostile
}

// mutate changes b in one of a few ways chosen by r: a byte replaced, removed or doubled,
// white space inserted, or one character of a base64 value or of the content changed.
func mutate(r *mrand.Rand, b []byte) []byte {
	out := append([]byte(nil), b...)
	const alphabet = "aAzZ09+/= \n\t<>&\"'=:#x"
	switch i := r.IntN(len(out)); r.IntN(5) {
	case 0:
		out[i] = alphabet[r.IntN(len(alphabet))]
	case 1:
		out = append(out[:i], out[i+1:]...)
	case 2:
		out = append(out[:i+1], out[i:]...)
	case 3:
		out = append(out[:i], append([]byte(" \n"), out[i:]...)...)
	default:
		// Inside the text or attribute values, where most changes still parse.
		for j := i; j < len(out); j++ {
			if c := out[j]; c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
				out[j] ^= 0x01
				break
			}
		}
	}
	return out
}

// TestAgreesWithGoxmldsig holds Verify to goxmldsig's Validate: on every saved valid and
// hostile document, on documents signed now with 2048- and 3072-bit keys, on changes that
// keep a signature valid under exclusive c14n, and on random mutations of the valid ones.
func TestAgreesWithGoxmldsig(t *testing.T) {
	t.Parallel()
	valid, hostile := agreeCorpus(t)
	for _, b := range valid {
		if v, _ := agree(t, b); !v.ok {
			t.Fatalf("valid document refused: %s\n%s", v, b)
		}
	}
	for _, b := range hostile {
		if v, _ := agree(t, b); v.ok {
			t.Fatalf("hostile document accepted:\n%s", b)
		}
	}
	// Changes exclusive c14n does not see: attribute order and quotes, an unused namespace
	// declaration, white space inside tags, an empty element written short or long.
	still := []func([]byte) []byte{
		func(b []byte) []byte {
			return bytes.Replace(b, []byte(`xmlns="urn:evoucher:exchange:1"`), []byte(`xmlns:unused="urn:x" xmlns="urn:evoucher:exchange:1"`), 1)
		},
		func(b []byte) []byte { return bytes.Replace(b, []byte(`Id="cb-1"`), []byte(`Id='cb-1'  `), 1) },
		func(b []byte) []byte {
			return bytes.Replace(b, []byte(`<ds:Signature xmlns:ds=`), []byte("<ds:Signature\n xmlns:ds="), 1)
		},
		func(b []byte) []byte {
			return bytes.Replace(b, []byte(`xmlenc#sha256"/>`), []byte(`xmlenc#sha256"></ds:DigestMethod>`), 1)
		},
	}
	for _, b := range valid {
		for i, f := range still {
			m := f(b)
			if bytes.Equal(m, b) {
				continue
			}
			if v, parsed := agree(t, m); !parsed || !v.ok {
				t.Errorf("change %d of a valid document refused: %s (parsed: %t)", i, v, parsed)
			}
		}
	}
	r := mrand.New(mrand.NewPCG(1, 2))
	seen := map[string]int{}
	for _, b := range valid {
		for range 400 {
			m := mutate(r, b)
			if v, ok := agree(t, m); ok {
				seen[v.String()]++
			}
		}
	}
	t.Logf("random mutations: %v", seen)
	// The mutations must reach the cryptographic checks both ways, or they show nothing.
	for _, want := range []string{"accepted", "refused (bad_signature)", "refused (bad_digest)"} {
		if seen[want] == 0 {
			t.Errorf("no mutation was %s: %v", want, seen)
		}
	}
}

// FuzzAgreesWithGoxmldsig holds Verify to goxmldsig's Validate on any document.
func FuzzAgreesWithGoxmldsig(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*", "*.xml"))
	if len(paths) == 0 {
		f.Fatal("no testdata documents: run go test -update once")
	}
	for _, p := range paths {
		f.Add(mustRead(f, p))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		agree(t, b)
	})
}

// mustSignHash returns a SHA-256 hash and its RSASSA-PKCS1-v1_5 signature by key.
func mustSignHash(t testing.TB, key *rsa.PrivateKey) (hashed, sig []byte) {
	t.Helper()
	h := sha256.Sum256([]byte("evoucher"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return h[:], sig
}

// mustFixedRSAKey returns an RSA key of bits bits and public exponent e made from primes that
// a PCG seeded with seed draws: the same key at every run, which a fuzz corpus needs
// (crypto/rsa.GenerateKey takes no seed), with exponents GenerateKey does not make.
func mustFixedRSAKey(t testing.TB, bits, e int, seed uint64) *rsa.PrivateKey {
	t.Helper()
	r := mrand.New(mrand.NewPCG(seed, uint64(bits)))
	one, E := big.NewInt(1), big.NewInt(int64(e))
	prime := func(bits int) *big.Int {
		for {
			p, drawn := new(big.Int), 0
			for ; drawn < bits; drawn += 64 {
				p.Lsh(p, 64).Or(p, new(big.Int).SetUint64(r.Uint64()))
			}
			// Exactly bits bits, the two top ones set so that p·q has all the bits asked.
			p.Rsh(p, uint(drawn-bits)).SetBit(p, bits-1, 1).SetBit(p, bits-2, 1).SetBit(p, 0, 1)
			if new(big.Int).GCD(nil, nil, E, new(big.Int).Sub(p, one)).Cmp(one) == 0 && p.ProbablyPrime(20) {
				return p
			}
		}
	}
	p, q := prime(bits-bits/2), prime(bits/2)
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	key := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: e},
		D:         new(big.Int).ModInverse(E, phi),
		Primes:    []*big.Int{p, q},
	}
	if err := key.Validate(); err != nil {
		t.Fatal(err)
	}
	key.Precompute()
	if key.N.BitLen() != bits {
		t.Fatalf("key of %d bits, want %d", key.N.BitLen(), bits)
	}
	return key
}

// rawSignature raises em to key's private exponent (by the Chinese remainder theorem, as
// crypto/rsa does): the signature of em whatever it holds. em must be below N.
func rawSignature(key *rsa.PrivateKey, em []byte) []byte {
	m := new(big.Int).SetBytes(em)
	p, q := key.Primes[0], key.Primes[1]
	m1 := new(big.Int).Exp(m, key.Precomputed.Dp, p)
	m2 := new(big.Int).Exp(m, key.Precomputed.Dq, q)
	h := m1.Sub(m1, m2).Mul(m1, key.Precomputed.Qinv).Mod(m1, p)
	return h.Mul(h, q).Add(h, m2).FillBytes(make([]byte, key.Size()))
}

// pkcs1Block returns an RSASSA-PKCS1-v1_5 block of k bytes with its details given: 0x00 0x01,
// padding bytes ps, the separator sep, prefix ‖ hash, and tail bytes of zeros after them
// (taken from the padding).
func pkcs1Block(k int, ps, sep byte, prefix, hash []byte, tail int) []byte {
	t := append(append([]byte{}, prefix...), hash...)
	em := make([]byte, k)
	em[1] = 0x01
	n := k - len(t) - 3 - tail
	for i := range n {
		em[2+i] = ps
	}
	em[2+n] = sep
	copy(em[3+n:], t)
	return em
}

// The DigestInfo prefixes of SHA-256 and SHA-1 (RFC 8017 §9.2, note 1).
var (
	prefixSHA256 = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	prefixSHA1   = []byte{0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14}
)

// TestVerifyRSA holds the package's RSASSA-PKCS1-v1_5 SHA-256 verification, with a key
// prepared for one verification and with one a Verifier keeps for many, to crypto/rsa's on
// valid signatures, altered ones, signatures at the ends of the range (0, 1, N − 2, N − 1, N,
// s + N), random values below N, blocks signed raw with the private key that are PKCS #1 v1.5
// in all but one detail, other keys of the same size, and keys crypto/rsa refuses. The keys
// are of the sizes signers use (2048 and 3072 bits), of 4096 bits, and of 3080 bits for a
// modulus that does not fill its last word, with the exponent 65537, and one of 3072 bits with
// the exponent 3.
func TestVerifyRSA(t *testing.T) {
	t.Parallel()
	r := mrand.New(mrand.NewPCG(3, 4))
	for _, size := range []struct{ bits, e int }{{2048, 65537}, {3072, 65537}, {3080, 65537}, {4096, 65537}, {3072, 3}} {
		newKey := func(seed uint64) *rsa.PrivateKey {
			if size.e != 65537 {
				return mustFixedRSAKey(t, size.bits, size.e, seed)
			}
			key, err := rsa.GenerateKey(rand.Reader, size.bits)
			if err != nil {
				t.Fatal(err)
			}
			return key
		}
		key, other := newKey(1), newKey(2)
		pub, k := &key.PublicKey, key.Size()
		h, good := mustSignHash(t, key)
		raw := func(em []byte) []byte { return rawSignature(key, em) }
		block := func(ps byte, sep byte, prefix []byte, hash []byte, tail int) []byte {
			return pkcs1Block(k, ps, sep, prefix, hash, tail)
		}
		other256 := sha256.Sum256([]byte("other"))
		plusN := new(big.Int).Add(new(big.Int).SetBytes(good), key.N).Bytes()
		_, otherSig := mustSignHash(t, other)
		evenN := &rsa.PublicKey{N: new(big.Int).SetBit(pub.N, 0, 0), E: pub.E}
		below := func(d int64) []byte { return new(big.Int).Sub(pub.N, big.NewInt(d)).FillBytes(make([]byte, k)) }
		cases := map[string]struct {
			pub         *rsa.PublicKey
			hashed, sig []byte
		}{
			"OK":                 {pub, h, good},
			"OKRaw":              {pub, h, raw(block(0xff, 0, prefixSHA256, h, 0))},
			"ErrOtherHash":       {pub, other256[:], good},
			"ErrFlipped":         {pub, h, append(append([]byte{}, good[:k-1]...), good[k-1]^1)},
			"ErrShort":           {pub, h, good[1:]},
			"ErrLong":            {pub, h, append([]byte{0}, good...)},
			"ErrPlusModulus":     {pub, h, plusN},
			"ErrModulus":         {pub, h, pub.N.FillBytes(make([]byte, k))},
			"ErrModulusMinusOne": {pub, h, below(1)},
			"ErrModulusMinusTwo": {pub, h, below(2)},
			"ErrZero":            {pub, h, make([]byte, k)},
			"ErrOne":             {pub, h, append(make([]byte, k-1), 1)},
			"ErrAllOnes":         {pub, h, bytes.Repeat([]byte{0xff}, k)},
			"ErrPaddingFE":       {pub, h, raw(block(0xfe, 0, prefixSHA256, h, 0))},
			"ErrNoSeparator":     {pub, h, raw(block(0xff, 0xff, prefixSHA256, h, 0))},
			"ErrSHA1Info":        {pub, h, raw(block(0xff, 0, prefixSHA1, h[:20], 0))},
			"ErrTrailingData":    {pub, h, raw(block(0xff, 0, prefixSHA256, h, 4))},
			"ErrShortHash":       {pub, h[:16], raw(block(0xff, 0, prefixSHA256, h[:16], 0))},
			"ErrOtherKey":        {&other.PublicKey, h, good},
			"ErrOtherKeysSig":    {pub, h, otherSig},
			"ErrEvenModulus":     {evenN, h, good},
			"ErrEvenExponent":    {&rsa.PublicKey{N: pub.N, E: 65536}, h, good},
			"ErrExponentOne":     {&rsa.PublicKey{N: pub.N, E: 1}, h, good},
			"ErrExponentLarge":   {&rsa.PublicKey{N: pub.N, E: 1<<31 + 1}, h, good},
		}
		for i := range 8 {
			b := make([]byte, k)
			for j := range b {
				b[j] = byte(r.Uint32())
			}
			s := new(big.Int).Mod(new(big.Int).SetBytes(b), pub.N)
			cases[fmt.Sprintf("ErrRandom%d", i)] = struct {
				pub         *rsa.PublicKey
				hashed, sig []byte
			}{pub, h, s.FillBytes(make([]byte, k))}
		}
		for name, c := range cases {
			want := rsa.VerifyPKCS1v15(c.pub, crypto.SHA256, c.hashed, c.sig)
			once := dsig.VerifyRSA(c.pub, c.hashed, c.sig)
			kept := dsig.RSAVerifier(c.pub)
			for i, got := range []error{once, kept(c.hashed, c.sig), kept(c.hashed, c.sig)} {
				if (got == nil) != (want == nil) || (name == "OK" || name == "OKRaw") != (got == nil) {
					t.Errorf("%d bits, E = %d, %s (%d): verifyRSA %v, crypto/rsa %v", size.bits, size.e, name, i, got, want)
				}
			}
		}
	}
}
