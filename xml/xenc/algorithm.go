package xenc

import (
	"crypto"
	"crypto/rsa"
	"strings"

	"github.com/beevik/etree"
)

// weak names the algorithms refused because they are broken or invite oracles.
var weak = map[string]string{
	"http://www.w3.org/2001/04/xmlenc#tripledes-cbc": "Triple DES in CBC mode",
	"http://www.w3.org/2001/04/xmlenc#aes128-cbc":    "AES-128 in CBC mode",
	"http://www.w3.org/2001/04/xmlenc#aes192-cbc":    "AES-192 in CBC mode",
	"http://www.w3.org/2001/04/xmlenc#aes256-cbc":    "AES-256 in CBC mode",
	"http://www.w3.org/2001/04/xmlenc#rsa-1_5":       "RSA PKCS#1 v1.5 key transport",
	"http://www.w3.org/2001/04/xmlenc#kw-tripledes":  "Triple DES key wrap",
	"http://www.w3.org/2001/04/xmldsig-more#md5":     "MD5",
}

// checkAlgorithm refuses a missing, weak or other algorithm than want on element e, which plays
// the role what ("encrypted data", "key transport", ...).
func checkAlgorithm(e *etree.Element, what string, want ...string) (string, error) {
	alg, ok := "", false
	for _, a := range e.Attr {
		if a.Space == "" && a.Key == "Algorithm" {
			alg, ok = a.Value, true
		}
	}
	if !ok {
		return "", refuse("malformed", "%s: %s has no Algorithm", what, e.Tag)
	}
	for _, w := range want {
		if alg == w {
			return alg, nil
		}
	}
	if name, ok := weak[alg]; ok {
		return "", refuse("weak_algorithm", "%s uses %s (%s), which is refused: use %s", what, name, alg, strings.Join(want, " or "))
	}
	return "", refuse("unsupported_algorithm", "%s uses %q, outside the platform's profile: use %s", what, alg, strings.Join(want, " or "))
}

// checkDataMethod checks the EncryptedData's EncryptionMethod: AES-256-GCM, no parameters.
func checkDataMethod(em *etree.Element) error {
	if _, err := checkAlgorithm(em, "encrypted data", AES256GCM); err != nil {
		return err
	}
	if c := firstChild(em); c != nil {
		return refuse("malformed", "encrypted data: unexpected %s in EncryptionMethod", c.Tag)
	}
	return nil
}

// keyTransport reads an EncryptedKey's EncryptionMethod and returns the RSA-OAEP options it
// calls for.
func keyTransport(em *etree.Element) (*rsa.OAEPOptions, error) {
	alg, err := checkAlgorithm(em, "key transport", RSAOAEPMGF1P, RSAOAEP)
	if err != nil {
		return nil, err
	}
	digest, mgf := digestSHA1, mgf1SHA1 // the defaults of both algorithms
	var seenDigest, seenMGF, seenParams bool
	for _, c := range em.ChildElements() {
		switch {
		case is(c, nsDS, "DigestMethod") && !seenDigest:
			seenDigest = true
			if digest, err = checkAlgorithm(c, "key transport digest", digestSHA1, digestSHA256); err != nil {
				return nil, err
			}
		case is(c, nsXENC11, "MGF") && !seenMGF && alg == RSAOAEP:
			seenMGF = true
			if mgf, err = checkAlgorithm(c, "key transport mask generation", mgf1SHA1, mgf1SHA256); err != nil {
				return nil, err
			}
		case is(c, nsXENC, "OAEPparams") && !seenParams:
			seenParams = true
			if firstChild(c) != nil || strings.TrimSpace(c.Text()) != "" {
				return nil, refuse("unsupported_algorithm", "key transport: OAEPparams (an OAEP label) is not part of the platform's profile: leave it out")
			}
		default:
			return nil, refuse("malformed", "key transport: unexpected %s in EncryptionMethod", c.FullTag())
		}
		if f := firstChild(c); f != nil && !is(c, nsXENC, "OAEPparams") {
			return nil, refuse("malformed", "key transport: unexpected %s in %s", f.Tag, c.Tag)
		}
	}
	switch {
	case alg == RSAOAEPMGF1P && digest != digestSHA1:
		// rsa-oaep-mgf1p fixes MGF1 to SHA-1: another digest would mix hashes, which
		// the platform's tokens do not do.
		return nil, refuse("unsupported_algorithm", "key transport: rsa-oaep-mgf1p with digest %s is not part of the profile: use SHA-1, or xmlenc11#rsa-oaep with SHA-256 and MGF1-SHA-256", digest)
	case digest == digestSHA1 && mgf == mgf1SHA1:
		return &rsa.OAEPOptions{Hash: crypto.SHA1, MGFHash: crypto.SHA1}, nil
	case digest == digestSHA256 && mgf == mgf1SHA256:
		return &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA256}, nil
	}
	return nil, refuse("unsupported_algorithm", "key transport: RSA-OAEP with digest %s and mask generation %s: the two hashes must be the same (SHA-1 or SHA-256)", digest, mgf)
}

// firstChild returns e's first child element, or nil.
func firstChild(e *etree.Element) *etree.Element {
	for c := range e.ChildElementsSeq() {
		return c
	}
	return nil
}
