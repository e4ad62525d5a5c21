package apiv3

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/payflow/payflow/wechatpay"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"
)

// PublicKeyIDPrefix starts the id of every WeChat Pay public key, as sent
// in Wechatpay-Serial (PUB_KEY_ID_0000000000000024101100397200000006).
const PublicKeyIDPrefix = "PUB_KEY_ID_"

// Keys holds every WeChat Pay key that may sign notifications and API
// responses, chosen by the serial in Wechatpay-Serial: WeChat Pay public keys
// (by their PUB_KEY_ID_… id) and platform certificates (by certificate
// serial, upper-case hex). Holding the old and the new key lets a merchant
// rotate without losing notifications. A Keys is immutable and safe for
// concurrent use; the crypto is the SDK's verifiers.
type Keys struct {
	pubs    map[string]*verifiers.SHA256WithRSAPubkeyVerifier
	certs   *core.CertificateMap
	certVer *verifiers.SHA256WithRSAVerifier
	accept  string // the serial we ask WeChat to sign its answers with
}

// LoadKeys reads the WeChat Pay public key in publicKeyFile (a PUBLIC KEY
// PEM) under the id publicKeyID, and every *.pem file in certDir: a file
// named PUB_KEY_ID_….pem is a further public key whose id is the file name
// without .pem (an old or new key during rotation), any other is a platform
// certificate keyed by its serial. publicKeyFile and publicKeyID go together;
// certDir is optional; at least one key is required. Answers to our calls are
// requested under publicKeyID, or else the newest certificate.
func LoadKeys(publicKeyFile, publicKeyID, certDir string) (*Keys, error) {
	if (publicKeyFile == "") != (publicKeyID == "") {
		return nil, errors.New("wechatpay: load v3 keys: public key file and public key id go together")
	}
	pubs := make(map[string]*rsa.PublicKey)
	if publicKeyFile != "" {
		pub, err := utils.LoadPublicKeyWithPath(publicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("wechatpay: load v3 public key %s: %w", publicKeyFile, err)
		}
		pubs[publicKeyID] = pub
	}
	var certs []*x509.Certificate
	if certDir != "" {
		entries, err := os.ReadDir(certDir)
		if err != nil {
			return nil, fmt.Errorf("wechatpay: load v3 keys: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".pem") {
				continue
			}
			path := filepath.Join(certDir, name)
			if id := strings.TrimSuffix(name, ".pem"); strings.HasPrefix(id, PublicKeyIDPrefix) {
				pub, err := utils.LoadPublicKeyWithPath(path)
				if err != nil {
					return nil, fmt.Errorf("wechatpay: load v3 public key %s: %w", path, err)
				}
				if old, ok := pubs[id]; ok && !old.Equal(pub) {
					return nil, fmt.Errorf("wechatpay: load v3 keys: %s holds another key than %s for id %s", path, publicKeyFile, id)
				}
				pubs[id] = pub
				continue
			}
			cert, err := utils.LoadCertificateWithPath(path)
			if err != nil {
				return nil, fmt.Errorf("wechatpay: load v3 platform certificate %s: %w", path, err)
			}
			certs = append(certs, cert)
		}
	}
	k, err := newKeys(pubs, certs)
	if err != nil {
		return nil, err
	}
	if publicKeyID != "" {
		k.accept = publicKeyID
	}
	return k, nil
}

// NewKeys builds a key set from public keys by id (each id starts with
// PUB_KEY_ID_) and platform certificates (RSA, keyed by their serial). At
// least one key is required.
// Answers to our calls are requested under the greatest public key id, or
// with no public key the newest certificate (LoadKeys names its own).
func NewKeys(publicKeys map[string]*rsa.PublicKey, certs []*x509.Certificate) (*Keys, error) {
	return newKeys(publicKeys, certs)
}

func newKeys(publicKeys map[string]*rsa.PublicKey, certs []*x509.Certificate) (*Keys, error) {
	if len(publicKeys) == 0 && len(certs) == 0 {
		return nil, errors.New("wechatpay: v3 keys: need a WeChat Pay public key or a platform certificate")
	}
	bySerial := make(map[string]*x509.Certificate, len(certs))
	for _, c := range certs {
		if c == nil {
			return nil, errors.New("wechatpay: v3 keys: nil certificate")
		}
		if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
			return nil, fmt.Errorf("wechatpay: v3 keys: certificate %X holds no RSA key", c.SerialNumber)
		}
		serial := utils.GetCertificateSerialNumber(*c)
		if old, ok := bySerial[serial]; ok && !old.Equal(c) {
			return nil, fmt.Errorf("wechatpay: v3 keys: two certificates with serial %s", serial)
		}
		bySerial[serial] = c
	}
	k := &Keys{pubs: make(map[string]*verifiers.SHA256WithRSAPubkeyVerifier, len(publicKeys))}
	ids := make([]string, 0, len(publicKeys))
	for id, pub := range publicKeys {
		if !strings.HasPrefix(id, PublicKeyIDPrefix) || len(id) == len(PublicKeyIDPrefix) || strings.TrimSpace(id) != id {
			return nil, fmt.Errorf("wechatpay: v3 keys: public key id %q does not look like %s…", wechatpay.Truncate(id, 64), PublicKeyIDPrefix)
		}
		if pub == nil {
			return nil, fmt.Errorf("wechatpay: v3 keys: nil public key %s", id)
		}
		k.pubs[id] = verifiers.NewSHA256WithRSAPubkeyVerifier(id, *pub)
		ids = append(ids, id)
	}
	k.certs = core.NewCertificateMap(bySerial)
	k.certVer = verifiers.NewSHA256WithRSAVerifier(k.certs)
	if len(ids) > 0 {
		sort.Strings(ids)
		k.accept = ids[len(ids)-1]
	} else {
		k.accept = k.certs.GetNewestSerial(context.Background())
	}
	return k, nil
}

// Has reports whether serial (a Wechatpay-Serial value) names a key in k.
func (k *Keys) Has(serial string) bool {
	if _, ok := k.pubs[serial]; ok {
		return true
	}
	_, ok := k.certs.Get(context.Background(), serial)
	return ok
}

// Verifier returns k as an SDK auth.Verifier, for option.WithVerifier or a
// notify handler. It routes by serial to the SDK's public-key or certificate
// verifier; its errors wrap wechatpay.ErrUnknownKey or wechatpay.ErrBadSignature. GetSerial
// names the key WeChat should sign its answers with.
func (k *Keys) Verifier() auth.Verifier { return keysVerifier{k} }

type keysVerifier struct{ k *Keys }

func (v keysVerifier) Verify(ctx context.Context, serial, message, signature string) error {
	var err error
	if pv, ok := v.k.pubs[serial]; ok {
		err = pv.Verify(ctx, serial, message, signature)
	} else if _, ok := v.k.certs.Get(ctx, serial); ok {
		err = v.k.certVer.Verify(ctx, serial, message, signature)
	} else {
		return fmt.Errorf("%w: %q", wechatpay.ErrUnknownKey, wechatpay.Truncate(serial, 64))
	}
	if err != nil {
		return fmt.Errorf("%w: serial %s: %v", wechatpay.ErrBadSignature, serial, err)
	}
	return nil
}

func (v keysVerifier) GetSerial(context.Context) (string, error) { return v.k.accept, nil }
