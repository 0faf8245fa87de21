package main

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher/pki/pkcs11"
)

// keyFlags select a party's own key: a label in its token (the token flags of the root
// command), or a PEM file.
type keyFlags struct {
	label, pemFile, certFile string
}

func (k *keyFlags) add(cmd *cobra.Command, what string) {
	cmd.Flags().StringVar(&k.label, "key-label", "", "label of "+what+" key in the token (--hsm-token)")
	cmd.Flags().StringVar(&k.pemFile, "key-pem", "", "or: "+what+" key as a PEM file (PKCS#8 or PKCS#1)")
	cmd.Flags().StringVar(&k.certFile, "cert", "", what+" certificate (PEM)")
	_ = cmd.MarkFlagRequired("cert")
}

// load returns the signer and certificate, and a function that releases the token.
func (k *keyFlags) load(g *globals) (crypto.Signer, *x509.Certificate, func(), error) {
	cert, err := readCertPEM(k.certFile)
	if err != nil {
		return nil, nil, nil, err
	}
	switch {
	case k.pemFile != "" && k.label != "":
		return nil, nil, nil, errors.New("give --key-label or --key-pem, not both")
	case k.pemFile != "":
		key, err := readKeyPEM(k.pemFile)
		return key, cert, func() {}, err
	case k.label == "":
		return nil, nil, nil, errors.New("give --key-label (a token key) or --key-pem")
	}
	tok, err := g.openToken()
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := findSigner(tok, k.label)
	if err != nil {
		_ = tok.Close()
		return nil, nil, nil, err
	}
	return key, cert, func() { _ = tok.Close() }, nil
}

func (k *keyFlags) tlsCert(key crypto.Signer, cert *x509.Certificate) *tls.Certificate {
	return &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

func readKeyPEM(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM key", path)
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: not a signing key", path)
		}
		return s, nil
	}
	return x509.ParsePKCS1PrivateKey(block.Bytes)
}

func findSigner(tok *pkcs11.Token, label string) (crypto.Signer, error) {
	k, err := tok.FindRSAKey(label)
	if err == nil {
		return k, nil
	}
	if e, err2 := tok.FindECDSAKey(label); err2 == nil {
		return e, nil
	}
	return nil, err
}
