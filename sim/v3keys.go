package sim

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// identity is one key WeChat Pay signs with: a WeChat Pay public key
// (id PUB_KEY_ID_…) or a platform certificate (id = its serial).
type identity struct {
	id   string
	key  *rsa.PrivateKey
	cert bool // a platform certificate identity (certificate mode)
}

// v3Keys is the simulator's side of API v3: its signing identities, the
// merchant certificate that verifies requests and the APIv3 key. It is
// read once and never changes.
type v3Keys struct {
	byID      map[string]*identity
	def       *identity // signs unless a request or operator names another
	mchSerial string    // the merchant certificate serial (serial_no)
	mchPub    *rsa.PublicKey
	apiV3Key  string // never logged
}

// keyDir is what a key directory (SIM_KEYS_DIR) holds.
type keyDir struct {
	v3     *v3Keys
	apiKey string // api_key, may be empty
}

// loadKeyDir reads a directory written by GenerateKeys: platform/*.key.pem
// (with <serial>.cert.pem for a certificate identity), apiclient_cert.pem,
// apiv3_key (unless apiV3Key overrides it) and api_key when present.
// defaultID names the default signing identity; when empty it is the
// lowest PUB_KEY_ID_… (the …01 one of GenerateKeys).
func loadKeyDir(dir, apiV3Key, defaultID string) (keyDir, error) {
	var kd keyDir
	k := &v3Keys{byID: make(map[string]*identity)}
	keyFiles, err := filepath.Glob(filepath.Join(dir, platformDir, "*"+keySuffix))
	if err != nil {
		return kd, fmt.Errorf("SIM_KEYS_DIR: %w", err)
	}
	for _, path := range keyFiles {
		id := strings.TrimSuffix(filepath.Base(path), keySuffix)
		raw, err := os.ReadFile(path)
		if err != nil {
			return kd, fmt.Errorf("SIM_KEYS_DIR: %w", err)
		}
		key, err := parsePrivateKey(raw)
		if err != nil {
			return kd, fmt.Errorf("SIM_KEYS_DIR: %s: %w", path, err)
		}
		ident := &identity{id: id, key: key}
		if !strings.HasPrefix(id, publicKeyPrefix) {
			certPath := filepath.Join(dir, platformDir, id+certSuffix)
			raw, err := os.ReadFile(certPath)
			if err != nil {
				return kd, fmt.Errorf("SIM_KEYS_DIR: %s is neither PUB_KEY_ID_… nor beside a certificate: %w", path, err)
			}
			cert, err := parseCertificate(raw)
			if err != nil {
				return kd, fmt.Errorf("SIM_KEYS_DIR: %s: %w", certPath, err)
			}
			if certSerial(cert) != id || !key.PublicKey.Equal(cert.PublicKey) {
				return kd, fmt.Errorf("SIM_KEYS_DIR: %s does not match its key (serial %s)", certPath, certSerial(cert))
			}
			ident.cert = true
		}
		k.byID[id] = ident
	}
	if len(k.byID) == 0 {
		return kd, fmt.Errorf("SIM_KEYS_DIR: no %s/*%s signing keys in %s", platformDir, keySuffix, dir)
	}
	if defaultID == "" {
		ids := k.ids()
		defaultID = ids[0]
		for _, id := range ids {
			if strings.HasPrefix(id, publicKeyPrefix) {
				defaultID = id // the lowest public key id, else the lowest certificate serial
				break
			}
		}
	}
	if k.def = k.byID[defaultID]; k.def == nil {
		return kd, fmt.Errorf("SIM_PLATFORM_KEY: %q is none of %s", defaultID, strings.Join(k.ids(), ", "))
	}

	raw, err := os.ReadFile(filepath.Join(dir, mchCertFile))
	if err != nil {
		return kd, fmt.Errorf("SIM_KEYS_DIR: merchant certificate: %w", err)
	}
	cert, err := parseCertificate(raw)
	if err != nil {
		return kd, fmt.Errorf("SIM_KEYS_DIR: %s: %w", mchCertFile, err)
	}
	k.mchSerial, k.mchPub = certSerial(cert), cert.PublicKey.(*rsa.PublicKey)

	k.apiV3Key = apiV3Key
	if k.apiV3Key == "" {
		if k.apiV3Key, err = readSecretFile(filepath.Join(dir, apiV3KeyFile)); err != nil {
			return kd, fmt.Errorf("SIM_KEYS_DIR: %w (or set WECHATPAY_APIV3_KEY)", err)
		}
	}
	if len(k.apiV3Key) != 32 {
		return kd, fmt.Errorf("SIM_KEYS_DIR: %s must hold 32 bytes, not %d", apiV3KeyFile, len(k.apiV3Key))
	}
	kd.v3 = k
	if kd.apiKey, err = readSecretFile(filepath.Join(dir, apiKeyFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return kd, fmt.Errorf("SIM_KEYS_DIR: %w", err)
	}
	return kd, nil
}

// ids returns the identities' ids, sorted.
func (k *v3Keys) ids() []string {
	ids := make([]string, 0, len(k.byID))
	for id := range k.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// pick returns the identity named id, or the default one when id is empty
// or unknown (as WeChat does with a request's Wechatpay-Serial).
func (k *v3Keys) pick(id string) *identity {
	if ident := k.byID[id]; ident != nil {
		return ident
	}
	return k.def
}
