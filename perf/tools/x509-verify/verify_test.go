// What the apiserver pays for each request it authenticates by a client certificate:
// crypto/x509's Verify of the peer's chain, which k8s.io/apiserver calls per request
// (pkg/authentication/request/x509) and does not cache. The CA's key type decides the
// signature check inside it. Run: go test -bench . -benchtime 2s
package x509verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// clientChain issues a client certificate for a P-256 key, signed by a CA holding caKey.
func clientChain(b *testing.B, caKey crypto.Signer) (*x509.Certificate, x509.VerifyOptions) {
	b.Helper()
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, caKey.Public(), caKey)
	if err != nil {
		b.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		b.Fatal(err)
	}
	clientKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	clientTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kwok-controller", Organization: []string{"system:masters"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	clientDER, err := x509.CreateCertificate(rand.Reader, clientTemplate, ca, clientKey.Public(), caKey)
	if err != nil {
		b.Fatal(err)
	}
	client, err := x509.ParseCertificate(clientDER)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	// The options the apiserver's x509 authenticator passes.
	return client, x509.VerifyOptions{
		Roots:         roots,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

func benchVerify(b *testing.B, caKey crypto.Signer) {
	client, opts := clientChain(b, caKey)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := client.Verify(opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCAECDSAP256(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	benchVerify(b, key)
}

func BenchmarkVerifyCARSA2048(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	benchVerify(b, key)
}
