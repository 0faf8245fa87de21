package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/cloudflare/cfssl/config"

	"github.com/evoucher/evoucher"
)

// Role is what a certificate lets its holder do. Exactly one per certificate.
type Role string

// The roles of the platform (DESIGN.md §3).
const (
	RoleCenterSign      Role = "center-sign"      // signs outbound XML
	RoleCenterEncrypt   Role = "center-encrypt"   // receives encrypted batches
	RoleCenterTLS       Role = "center-tls"       // the server's TLS certificate
	RoleLog             Role = "log"              // signs checkpoints of the exchange log
	RoleOperatorSign    Role = "operator-sign"    // signs batches; mTLS for operators
	RoleOperatorEncrypt Role = "operator-encrypt" // receives orders and statements
	RoleTerminal        Role = "terminal"         // a POS terminal's token
	RoleVendor          Role = "vendor"           // a salesman's vendor card
	RoleManager         Role = "manager"          // read-only mTLS for platform managers
	RoleAuditor         Role = "auditor"          // read-only mTLS for auditors
)

// Roles lists every role, in a stable order.
func Roles() []Role {
	return []Role{RoleCenterSign, RoleCenterEncrypt, RoleCenterTLS, RoleLog, RoleOperatorSign,
		RoleOperatorEncrypt, RoleTerminal, RoleVendor, RoleManager, RoleAuditor}
}

// ParseRole returns the role named s, or an invalid error listing the roles.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if string(r) == s {
			return r, nil
		}
	}
	return "", evoucher.Errorf(evoucher.KindInvalid, "unknown_role", "unknown role %q (one of %s)", s, roleList())
}

func roleList() string {
	var names []string
	for _, r := range Roles() {
		names = append(names, string(r))
	}
	return strings.Join(names, ", ")
}

// Profile is what a certificate of one role looks like: its usages, lifetime and the keys it
// may certify.
type Profile struct {
	Role     Role
	Usages   []string // cfssl usage names: key usages and extended key usages
	Validity time.Duration
	// MinRSABits is the smallest RSA modulus accepted; 0 means RSA is not accepted.
	MinRSABits int
	// Curves are the ECDSA curves accepted; none means ECDSA is not accepted.
	Curves []elliptic.Curve
}

const year = 365 * 24 * time.Hour

// ProfileOf returns the certificate profile of role r.
func ProfileOf(r Role) (Profile, error) {
	p, ok := profiles[r]
	if !ok {
		return Profile{}, evoucher.Errorf(evoucher.KindInvalid, "unknown_role", "unknown role %q (one of %s)", r, roleList())
	}
	return p, nil
}

var profiles = map[Role]Profile{
	RoleCenterSign:      {RoleCenterSign, []string{"digital signature"}, 3 * year, 3072, nil},
	RoleCenterEncrypt:   {RoleCenterEncrypt, []string{"key encipherment"}, 3 * year, 3072, nil},
	RoleCenterTLS:       {RoleCenterTLS, []string{"digital signature", "key encipherment", "server auth"}, year, 2048, []elliptic.Curve{elliptic.P256(), elliptic.P384()}},
	RoleLog:             {RoleLog, []string{"digital signature"}, 3 * year, 0, []elliptic.Curve{elliptic.P256()}},
	RoleOperatorSign:    {RoleOperatorSign, []string{"digital signature", "client auth"}, 2 * year, 2048, nil},
	RoleOperatorEncrypt: {RoleOperatorEncrypt, []string{"key encipherment"}, 2 * year, 2048, nil},
	RoleTerminal:        {RoleTerminal, []string{"digital signature", "key encipherment", "client auth"}, 2 * year, 2048, nil},
	RoleVendor:          {RoleVendor, []string{"digital signature", "key encipherment", "client auth"}, 2 * year, 2048, nil},
	RoleManager:         {RoleManager, []string{"digital signature", "client auth"}, year, 2048, []elliptic.Curve{elliptic.P256(), elliptic.P384()}},
	RoleAuditor:         {RoleAuditor, []string{"digital signature", "client auth"}, year, 2048, []elliptic.Curve{elliptic.P256(), elliptic.P384()}},
}

// maxRSABits bounds the work a hostile CSR can cause.
const maxRSABits = 8192

// checkKey refuses a public key the profile does not accept.
func (p Profile) checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		if p.MinRSABits == 0 {
			return evoucher.Errorf(evoucher.KindInvalid, "unsupported_key", "a %s certificate needs an ECDSA key, not RSA", p.Role)
		}
		if bits < p.MinRSABits {
			return evoucher.Errorf(evoucher.KindInvalid, "weak_key", "RSA key of %d bits is too small for a %s certificate: at least %d bits are required", bits, p.Role, p.MinRSABits)
		}
		if bits > maxRSABits {
			return evoucher.Errorf(evoucher.KindInvalid, "unsupported_key", "RSA key of %d bits is larger than the %d bits accepted", bits, maxRSABits)
		}
		if k.E != 65537 {
			return evoucher.Errorf(evoucher.KindInvalid, "unsupported_key", "RSA public exponent %d is not accepted: use 65537", k.E)
		}
		return nil
	case *ecdsa.PublicKey:
		for _, c := range p.Curves {
			if k.Curve == c {
				return nil
			}
		}
		if len(p.Curves) == 0 {
			return evoucher.Errorf(evoucher.KindInvalid, "unsupported_key", "a %s certificate needs an RSA key of at least %d bits, not ECDSA", p.Role, p.MinRSABits)
		}
		return evoucher.Errorf(evoucher.KindInvalid, "unsupported_key", "ECDSA curve %s is not accepted for a %s certificate", k.Curve.Params().Name, p.Role)
	default:
		return evoucher.Errorf(evoucher.KindInvalid, "unsupported_key", "%T keys are not accepted", pub)
	}
}

func (p Profile) signingProfile() *config.SigningProfile {
	return &config.SigningProfile{
		Usage:        p.Usages,
		Expiry:       p.Validity,
		ExpiryString: p.Validity.String(),
		// Only the key comes from the CSR; subject and names are ours.
		CSRWhitelist: &config.CSRWhitelist{PublicKey: true, PublicKeyAlgorithm: true},
	}
}

// entityPattern keeps entity ids plain, so they read the same in a URI, a log line and a file
// name.
var entityPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckEntity returns an invalid error unless id is a well-formed entity id.
func CheckEntity(id string) error {
	if !entityPattern.MatchString(id) {
		return evoucher.Errorf(evoucher.KindInvalid, "bad_entity", "entity id %q is not valid: use 1 to 64 letters, digits, '.', '_' or '-'", id)
	}
	return nil
}

// identityURI is how a certificate carries its role and entity: one URI SAN.
func identityURI(r Role, entity string) string {
	return "urn:evoucher:" + string(r) + ":" + entity
}

// parseIdentityURIs reads the role and entity back from a certificate's URI SANs; exactly one
// must be ours.
func parseIdentityURIs(uris []*url.URL) (Role, string, error) {
	var role Role
	var entity string
	found := 0
	for _, u := range uris {
		if u.Scheme != "urn" || !strings.HasPrefix(u.Opaque, "evoucher:") {
			continue
		}
		found++
		r, e, ok := strings.Cut(strings.TrimPrefix(u.Opaque, "evoucher:"), ":")
		if !ok {
			return "", "", fmt.Errorf("malformed identity %q", u.String())
		}
		role, entity = Role(r), e
	}
	if found != 1 {
		return "", "", fmt.Errorf("certificate carries %d evoucher identities, want exactly 1", found)
	}
	if _, ok := profiles[role]; !ok {
		return "", "", fmt.Errorf("unknown role %q", role)
	}
	if CheckEntity(entity) != nil {
		return "", "", fmt.Errorf("malformed entity %q", entity)
	}
	return role, entity, nil
}
