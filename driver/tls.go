package driver

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/seedmq/mq"
)

// TLSFiles names the PEM files and settings of a TLS client configuration,
// as the tls_* URL parameters give them (see Params.TLS).
type TLSFiles struct {
	// CAFile holds the certificates that verify the server (PEM). Empty
	// means the system's roots.
	CAFile string
	// CertFile and KeyFile hold the client certificate and its key (PEM),
	// for brokers that authenticate clients by certificate. Give both or
	// neither.
	CertFile, KeyFile string
	// ServerName overrides the name the server's certificate must carry.
	// Empty means the host dialed.
	ServerName string
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool
}

// Config loads the files and returns a TLS client configuration requiring
// TLS 1.2 or later. Errors wrap mq.ErrInvalidURL, name the URL parameter
// at fault, and start with driverName.
func (f TLSFiles) Config(driverName string) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName, InsecureSkipVerify: f.InsecureSkipVerify}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: tls_ca_file: %w", driverName, mq.ErrInvalidURL, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: %w: tls_ca_file %q holds no PEM certificate", driverName, mq.ErrInvalidURL, f.CAFile)
		}
		t.RootCAs = pool
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, fmt.Errorf("%s: %w: give tls_cert_file and tls_key_file together", driverName, mq.ErrInvalidURL)
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: tls_cert_file and tls_key_file: %w", driverName, mq.ErrInvalidURL, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}
