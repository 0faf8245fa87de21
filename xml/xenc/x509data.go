package xenc

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"math/big"
	"strings"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// keyID is how an EncryptedKey names the certificate it is wrapped to: the identifiers of
// its ds:KeyInfo/ds:X509Data. Any one of them matching a certificate addresses the key to it.
type keyID struct {
	issuerSerials []issuerSerial
	certs         [][]byte // DER
	skis          [][]byte
}

type issuerSerial struct {
	issuer string // RFC 4514
	serial *big.Int
}

// maxSerialDigits bounds X509SerialNumber (RFC 5280 serials are at most 20 octets, 49 digits).
const maxSerialDigits = 64

// readKeyID reads an EncryptedKey's ds:KeyInfo. Identifiers it does not use (KeyName,
// X509SubjectName, ...) are skipped; RetrievalMethod is refused.
func readKeyID(ki *etree.Element) (keyID, error) {
	var id keyID
	for _, c := range ki.ChildElements() {
		switch {
		case is(c, nsDS, "RetrievalMethod"):
			return id, refuse("unsupported_feature", "EncryptedKey: RetrievalMethod is not supported: name the recipient certificate with X509Data")
		case is(c, nsDS, "X509Data"):
			for _, x := range c.ChildElements() {
				switch {
				case is(x, nsDS, "X509IssuerSerial"):
					s, err := readIssuerSerial(x)
					if err != nil {
						return id, err
					}
					id.issuerSerials = append(id.issuerSerials, s)
				case is(x, nsDS, "X509Certificate"):
					der, err := decodeBase64(x, "X509Certificate")
					if err != nil {
						return id, err
					}
					id.certs = append(id.certs, der)
				case is(x, nsDS, "X509SKI"):
					ski, err := decodeBase64(x, "X509SKI")
					if err != nil {
						return id, err
					}
					id.skis = append(id.skis, ski)
				}
			}
		}
	}
	return id, nil
}

func readIssuerSerial(x *etree.Element) (issuerSerial, error) {
	var name, serial *etree.Element
	for _, c := range x.ChildElements() {
		switch {
		case is(c, nsDS, "X509IssuerName") && name == nil:
			name = c
		case is(c, nsDS, "X509SerialNumber") && serial == nil:
			serial = c
		default:
			return issuerSerial{}, refuse("malformed", "X509IssuerSerial: unexpected %s", c.Tag)
		}
	}
	if name == nil || serial == nil {
		return issuerSerial{}, refuse("malformed", "X509IssuerSerial needs an X509IssuerName and an X509SerialNumber")
	}
	s := strings.TrimSpace(serial.Text())
	n, ok := new(big.Int), len(s) <= maxSerialDigits && s != "" && strings.Trim(s, "0123456789") == ""
	if ok {
		_, ok = n.SetString(s, 10)
	}
	if !ok {
		return issuerSerial{}, refuse("malformed", "X509SerialNumber %.70q is not a decimal integer", s)
	}
	return issuerSerial{issuer: strings.TrimSpace(name.Text()), serial: n}, nil
}

// addresses reports whether id names cert.
func (id keyID) addresses(cert *x509.Certificate) bool {
	for _, der := range id.certs {
		if bytes.Equal(der, cert.Raw) {
			return true
		}
	}
	for _, ski := range id.skis {
		if len(cert.SubjectKeyId) > 0 && bytes.Equal(ski, cert.SubjectKeyId) {
			return true
		}
	}
	for _, s := range id.issuerSerials {
		if s.serial.Cmp(cert.SerialNumber) == 0 && sameIssuer(s.issuer, cert) {
			return true
		}
	}
	return false
}

// issuerName writes cert's issuer as RFC 4514 (which is RFC 2253's order and escaping, what
// xmlsec1 writes), in the certificate's own attribute order.
func issuerName(cert *x509.Certificate) string {
	var seq pkix.RDNSequence
	if rest, err := asn1.Unmarshal(cert.RawIssuer, &seq); err != nil || len(rest) > 0 {
		return cert.Issuer.String()
	}
	return seq.String()
}

// sameIssuer compares an RFC 4514 issuer name with cert's issuer: attribute by attribute,
// types by OID, string values ignoring case, so that names written by Go, OpenSSL (xmlsec1)
// or Java match.
func sameIssuer(name string, cert *x509.Certificate) bool {
	var seq pkix.RDNSequence
	if rest, err := asn1.Unmarshal(cert.RawIssuer, &seq); err != nil || len(rest) > 0 {
		return false
	}
	got, ok := parseDN(name)
	if !ok || len(got) != len(seq) {
		return false
	}
	for i, rdn := range seq {
		g := got[len(got)-1-i] // the string form lists the most significant RDN last
		if len(g) != len(rdn) {
			return false
		}
		for _, tv := range rdn {
			want := atv{tv.Type.String(), valueString(tv.Value)}
			found := false
			for _, a := range g {
				found = found || (a.oid == want.oid && strings.EqualFold(a.value, want.value))
			}
			if !found {
				return false
			}
		}
	}
	return true
}

type atv struct{ oid, value string }

// shortNames maps the attribute type names of RFC 4514 and OpenSSL to OIDs.
var shortNames = map[string]string{
	"CN": "2.5.4.3", "SN": "2.5.4.4", "SERIALNUMBER": "2.5.4.5", "C": "2.5.4.6", "L": "2.5.4.7",
	"ST": "2.5.4.8", "S": "2.5.4.8", "STREET": "2.5.4.9", "O": "2.5.4.10", "OU": "2.5.4.11",
	"T": "2.5.4.12", "TITLE": "2.5.4.12", "POSTALCODE": "2.5.4.17", "GN": "2.5.4.42",
	"GIVENNAME": "2.5.4.42", "DC": "0.9.2342.19200300.100.1.25", "UID": "0.9.2342.19200300.100.1.1",
	"EMAILADDRESS": "1.2.840.113549.1.9.1", "E": "1.2.840.113549.1.9.1",
}

// parseDN parses an RFC 4514 distinguished name into its RDNs, in string order.
func parseDN(s string) ([][]atv, bool) {
	if strings.TrimSpace(s) == "" {
		return nil, false
	}
	var dn [][]atv
	for _, rdnStr := range splitUnescaped(s, ',') {
		var rdn []atv
		for _, a := range splitUnescaped(rdnStr, '+') {
			typ, val, ok := strings.Cut(a, "=")
			if !ok {
				return nil, false
			}
			typ = strings.TrimSpace(typ)
			oid, known := shortNames[strings.ToUpper(typ)]
			if !known {
				oid = strings.TrimPrefix(strings.TrimPrefix(typ, "OID."), "oid.")
				if strings.Trim(oid, "0123456789.") != "" || oid == "" {
					return nil, false
				}
			}
			v, ok := unescapeValue(val)
			if !ok {
				return nil, false
			}
			rdn = append(rdn, atv{oid, v})
		}
		dn = append(dn, rdn)
	}
	return dn, true
}

// splitUnescaped splits s at each sep not escaped by a backslash.
func splitUnescaped(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// unescapeValue decodes an attribute value: \c, \hh, or #hex of a DER string.
func unescapeValue(v string) (string, bool) {
	v = strings.TrimLeft(v, " ")
	for strings.HasSuffix(v, " ") && !strings.HasSuffix(v, "\\ ") {
		v = v[:len(v)-1]
	}
	if strings.HasPrefix(v, "#") {
		der, err := hex.DecodeString(v[1:])
		if err != nil {
			return "", false
		}
		var raw asn1.RawValue
		if rest, err := asn1.Unmarshal(der, &raw); err != nil || len(rest) > 0 {
			return "", false
		}
		return derValueString(raw, der), true
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]) {
			h, _ := hex.DecodeString(v[i+1 : i+3])
			b.WriteByte(h[0])
			i += 2
			continue
		}
		if i+1 >= len(v) {
			return "", false
		}
		b.WriteByte(v[i+1])
		i++
	}
	return b.String(), utf8.ValidString(b.String())
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// valueString is the comparable form of a certificate's attribute value.
func valueString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	der, err := asn1.Marshal(v)
	if err != nil {
		return ""
	}
	return "#" + hex.EncodeToString(der)
}

// derValueString is the comparable form of a #hex value: the string for string types, the
// hex of the DER otherwise.
func derValueString(raw asn1.RawValue, der []byte) string {
	if raw.Class == asn1.ClassUniversal {
		switch raw.Tag {
		case asn1.TagUTF8String, asn1.TagPrintableString, asn1.TagIA5String, asn1.TagT61String:
			return string(raw.Bytes)
		}
	}
	return "#" + hex.EncodeToString(der)
}
