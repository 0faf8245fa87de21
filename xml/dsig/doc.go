// Package dsig owns the XML signature profile of the exchange (DESIGN.md §4): one enveloped
// ds:Signature, the last child of the document's root element, with exactly one Reference to
// the root by its Id (URI="#Id"), the transforms enveloped-signature then exclusive c14n,
// exclusive c14n for SignedInfo, RSA-SHA256 (keys of at least 2048 bits) over a SHA-256
// digest, and a KeyInfo carrying exactly the signer's certificate. It signs with goxmldsig on
// etree and verifies against the canonical form goxmldsig's etreeutils makes, streamed into
// SHA-256 straight from the parsed tree (c14n.go).
//
// Verify checks the whole profile on the parsed document before any cryptography, asks the
// caller's Trust whether the signer's certificate is acceptable (package pki decides chain,
// role, revocation and validity at the message's time), and only then checks the signature:
// SignedInfo, in exclusive canonical form, under the certificate's key, then the
// digest of the root without its signature, in exclusive canonical form (byte for byte
// goxmldsig's canonicalization, without its Validate, which found, decoded and re-parsed the
// signature and the content again for every message, nor its copies of the tree; tests and fuzz
// targets hold the stream to etreeutils and Verify to Validate). It returns the element that
// the signature covers, the canonical copy of the root whose digest was checked, made once the
// digest matched (VerifyRoot returns that copy's root alone, for callers that read only its
// attributes): callers read that element, never the parsed document, so content outside the
// signature (wrapping attacks) or invisible to the canonical form (comments) cannot reach them. Documents with comments, processing instructions or a DOCTYPE are refused outright.
//
// VerifyBytes verifies a document from its bytes, for an auditor going through a log: the
// documents SignBytes writes are recognised and verified in one pass over the bytes, without
// building a tree (fastverify.go); anything else is parsed with package message's Parse (whose
// limits the caller passes) and verified by VerifyRoot, which also decides every refusal.
//
// The package never parses bytes into a tree itself (size and depth limits belong to package
// message, and the subset of XML both read in one pass to package xmltok), never decides
// whether a certificate is trusted, and never reads configuration.
package dsig

// The profile's namespace and algorithm identifiers.
const (
	nsDSig       = "http://www.w3.org/2000/09/xmldsig#"
	algExcC14N   = "http://www.w3.org/2001/10/xml-exc-c14n#"
	algEnveloped = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
	algRSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	algSHA256    = "http://www.w3.org/2001/04/xmlenc#sha256"
	algXPath     = "http://www.w3.org/TR/1999/REC-xpath-19991116"
)

// Key sizes accepted for signers: the design's minimum, and a ceiling that bounds the work a
// hostile certificate can cause before it is trusted.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// idAttr is the root attribute the Reference points to.
const idAttr = "Id"
