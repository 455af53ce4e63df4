// Package auth is who may call Baton's stamps and location service, and
// how they prove it: TLS on every listener, client certificates (mutual
// TLS) for the stamps and Baton's worker, bearer tokens for tools that
// cannot present one, and roles that let each caller do its job and no
// more. docs/SECURITY.md has the threat model and the roles table.
//
// A certificate carries its holder's name in the subject's common name and
// its roles, one per organizational unit; a node (a stamp, the location
// service) also serves with its certificate, for the names and addresses
// it is reached at. Everything is the standard library's crypto/tls and
// crypto/x509.
package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Certificate lifetimes: a CA lives long, what it signs is rotated well
// before the CA is.
const (
	CALifetime   = 5 * 365 * 24 * time.Hour
	CertLifetime = 365 * 24 * time.Hour
)

// File names in a certificates directory (as cockroach cert lays them out).
const (
	CACert = "ca.crt"
	CAKey  = "ca.key"
)

// NodeFiles and ClientFiles name a node's and a client's certificate and
// key in dir.
func NodeFiles(dir, name string) Files   { return filesIn(dir, "node."+name) }
func ClientFiles(dir, name string) Files { return filesIn(dir, "client."+name) }

// Files are what a process needs to speak TLS: the CA that signs every
// peer, its own certificate and its key.
type Files struct {
	CA   string
	Cert string
	Key  string
}

func filesIn(dir, base string) Files {
	return Files{CA: filepath.Join(dir, CACert), Cert: filepath.Join(dir, base+".crt"),
		Key: filepath.Join(dir, base+".key")}
}

// CreateCA writes a new CA (ca.crt, and ca.key readable by its owner only)
// into dir. It refuses to overwrite an existing CA: every certificate it
// signed would stop working.
func CreateCA(dir string, lifetime time.Duration) error {
	if _, err := os.Stat(filepath.Join(dir, CAKey)); err == nil {
		return fmt.Errorf("%s already holds a CA (%s): delete it first if you mean to replace every certificate it signed",
			dir, CAKey)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("create CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Baton CA", Organization: []string{"Baton"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("create CA certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return writePair(filepath.Join(dir, CACert), filepath.Join(dir, CAKey), der, key)
}

// CreateNode writes a node's certificate, signed by dir's CA: it serves
// TLS for hosts (names and IP addresses; its name, localhost and 127.0.0.1
// are always included) and calls its peers as name with the replication
// role.
func CreateNode(dir, name string, hosts []string, lifetime time.Duration) error {
	if err := checkName(name); err != nil {
		return err
	}
	hosts = append([]string{name, "localhost", "127.0.0.1"}, hosts...)
	tmpl := &x509.Certificate{
		Subject:     subject(name, []Role{RoleReplication}),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return sign(dir, NodeFiles(dir, name), tmpl, lifetime)
}

// CreateClient writes a client's certificate with roles, signed by dir's
// CA.
func CreateClient(dir, name string, roles []Role, lifetime time.Duration) error {
	if err := checkName(name); err != nil {
		return err
	}
	if len(roles) == 0 {
		return errors.New("a client certificate needs at least one role: " + RoleList())
	}
	for _, r := range roles {
		if !r.Valid() {
			return fmt.Errorf("unknown role %q: use %s", r, RoleList())
		}
	}
	tmpl := &x509.Certificate{
		Subject:     subject(name, roles),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return sign(dir, ClientFiles(dir, name), tmpl, lifetime)
}

func subject(name string, roles []Role) pkix.Name {
	ous := make([]string, len(roles))
	for i, r := range roles {
		ous[i] = string(r)
	}
	return pkix.Name{CommonName: name, Organization: []string{"Baton"}, OrganizationalUnit: ous}
}

func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\\ \t\n") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("name %q: use letters, digits, '.', '_' or '-'", name)
	}
	return nil
}

// sign signs tmpl with dir's CA and writes it to f.
func sign(dir string, f Files, tmpl *x509.Certificate, lifetime time.Duration) error {
	ca, caKey, err := loadCA(dir)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	now := time.Now()
	tmpl.SerialNumber = serial()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(lifetime)
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter // nothing outlives its CA
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("sign %s: %w", tmpl.Subject.CommonName, err)
	}
	return writePair(f.Cert, f.Key, der, key)
}

// loadCA reads dir's CA certificate and key.
func loadCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACert))
	if err != nil {
		return nil, nil, fmt.Errorf("read the CA (create it first: stampd certs create-ca --dir %s): %w", dir, err)
	}
	b, _ := pem.Decode(certPEM)
	if b == nil {
		return nil, nil, fmt.Errorf("%s: no PEM certificate", filepath.Join(dir, CACert))
	}
	ca, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, CACert), err)
	}
	keyPEM, err := readPrivate(filepath.Join(dir, CAKey))
	if err != nil {
		return nil, nil, err
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, fmt.Errorf("%s: no PEM key", filepath.Join(dir, CAKey))
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, CAKey), err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s: not a signing key", filepath.Join(dir, CAKey))
	}
	return ca, signer, nil
}

// writePair writes a certificate (0644) and its key (0600, never readable
// by others).
func writePair(certPath, keyPath string, der []byte, key crypto.PrivateKey) error {
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", keyPath, err)
	}
	// WriteFile keeps the mode of a file that already existed.
	if err := os.Chmod(keyPath, 0o600); err != nil {
		return fmt.Errorf("chmod %s: %w", keyPath, err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", certPath, err)
	}
	return nil
}

// readPrivate reads a key file, refusing one that others may read.
func readPrivate(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key %s is readable by others (mode %#o): chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	return b, nil
}

// ReadSecretFile reads a password or token from a file that others may
// not read (mode 0600), without surrounding whitespace; empty is an error.
func ReadSecretFile(path string) (string, error) {
	b, err := readPrivate(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}
