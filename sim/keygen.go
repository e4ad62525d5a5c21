package sim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Names inside a key directory written by GenerateKeys and read by the
// simulator (SIM_KEYS_DIR).
const (
	mchKeyFile      = "apiclient_key.pem"  // merchant API private key (PKCS #8)
	mchCertFile     = "apiclient_cert.pem" // merchant API certificate; its serial is serial_no
	platformDir     = "platform"           // WeChat Pay's private keys: <id>.key.pem (+ <serial>.cert.pem)
	trustDir        = "merchant-trust"     // what the merchant holds to verify WeChat Pay
	trustPubKeyFile = "pub_key.pem"        // the primary WeChat Pay public key
	trustExtraDir   = "extra"              // further public keys (PUB_KEY_ID_….pem) and platform certificates
	apiV3KeyFile    = "apiv3_key"
	apiKeyFile      = "api_key"
	keysEnvFile     = "keys.env"
	keySuffix       = ".key.pem"
	certSuffix      = ".cert.pem"
	publicKeyPrefix = "PUB_KEY_ID_"
)

// KeyFiles describes a key directory written by GenerateKeys. Every path
// is absolute.
type KeyFiles struct {
	Dir                string
	MchPrivateKeyFile  string // WECHATPAY_MCH_PRIVATE_KEY_FILE
	MchCertFile        string
	MchCertSerial      string // WECHATPAY_MCH_CERT_SERIAL (upper-case hex)
	PublicKeyID        string // WECHATPAY_PUBLIC_KEY_ID: PUB_KEY_ID_…01, the primary WeChat Pay public key
	PublicKeyFile      string // WECHATPAY_PUBLIC_KEY_FILE
	SecondPublicKeyID  string // PUB_KEY_ID_…02, a second WeChat Pay public key (rotation)
	PlatformCertSerial string // a platform certificate identity (certificate mode)
	PlatformCertDir    string // WECHATPAY_PLATFORM_CERT_DIR: PUB_KEY_ID_…02.pem and <serial>.pem
	APIv3KeyFile       string
	APIKeyFile         string
	EnvFile            string // keys.env
}

var (
	publicKeyIDPattern = regexp.MustCompile(`^PUB_KEY_ID_[0-9]{8,40}$`)
	certSerialPattern  = regexp.MustCompile(`^[0-9A-F]{8,40}$`)
)

// GenerateKeys writes throwaway keys for a local stack into dir (created
// when missing): the merchant's API key pair and certificate, two WeChat
// Pay public-key identities and one platform-certificate identity (their
// private keys under platform/, the merchant's copy of the public side under
// merchant-trust/), the APIv3 key, the API v2 key and keys.env. A file that
// exists is kept as it is and what it holds is reused, so running it again
// changes nothing. Files are 0600, directories 0700. Nothing secret is
// logged or put in an error.
func GenerateKeys(dir string) (KeyFiles, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return KeyFiles{}, fmt.Errorf("keygen: %w", err)
	}
	kf := KeyFiles{
		Dir:               abs,
		MchPrivateKeyFile: filepath.Join(abs, mchKeyFile),
		MchCertFile:       filepath.Join(abs, mchCertFile),
		PublicKeyFile:     filepath.Join(abs, trustDir, trustPubKeyFile),
		PlatformCertDir:   filepath.Join(abs, trustDir, trustExtraDir),
		APIv3KeyFile:      filepath.Join(abs, apiV3KeyFile),
		APIKeyFile:        filepath.Join(abs, apiKeyFile),
		EnvFile:           filepath.Join(abs, keysEnvFile),
	}
	platform := filepath.Join(abs, platformDir)
	for _, d := range []string{abs, platform, filepath.Join(abs, trustDir), kf.PlatformCertDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return kf, fmt.Errorf("keygen: %w", err)
		}
	}

	// The merchant's API key and certificate.
	mchKey, err := ensureKey(kf.MchPrivateKeyFile)
	if err != nil {
		return kf, err
	}
	mchCert, err := ensureCert(kf.MchCertFile, mchKey, "", "payflow local merchant")
	if err != nil {
		return kf, err
	}
	kf.MchCertSerial = certSerial(mchCert)

	// WeChat Pay's identities, named after what is already there.
	if kf.PublicKeyID, kf.SecondPublicKeyID, err = publicKeyIDs(platform); err != nil {
		return kf, err
	}
	for i, id := range []string{kf.PublicKeyID, kf.SecondPublicKeyID} {
		key, err := ensureKey(filepath.Join(platform, id+keySuffix))
		if err != nil {
			return kf, err
		}
		pubFile := filepath.Join(kf.PlatformCertDir, id+".pem")
		if i == 0 {
			pubFile = kf.PublicKeyFile
		}
		if err := ensurePublicKey(pubFile, &key.PublicKey); err != nil {
			return kf, err
		}
	}
	if kf.PlatformCertSerial, err = platformCertSerial(platform); err != nil {
		return kf, err
	}
	platformKey, err := ensureKey(filepath.Join(platform, kf.PlatformCertSerial+keySuffix))
	if err != nil {
		return kf, err
	}
	platformCert, err := ensureCert(filepath.Join(platform, kf.PlatformCertSerial+certSuffix), platformKey, kf.PlatformCertSerial, "Tenpay.com Root CA (local sandbox)")
	if err != nil {
		return kf, err
	}
	if err := ensureFile(filepath.Join(kf.PlatformCertDir, kf.PlatformCertSerial+".pem"), func() ([]byte, error) {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: platformCert.Raw}), nil
	}); err != nil {
		return kf, err
	}

	// Symmetric keys and keys.env.
	if err := ensureFile(kf.APIv3KeyFile, func() ([]byte, error) { return []byte(randomAlnum(32) + "\n"), nil }); err != nil {
		return kf, err
	}
	if err := ensureFile(kf.APIKeyFile, func() ([]byte, error) { return []byte(randomHex(16) + "\n"), nil }); err != nil {
		return kf, err
	}
	err = ensureFile(kf.EnvFile, func() ([]byte, error) {
		v3key, err := readSecretFile(kf.APIv3KeyFile)
		if err != nil {
			return nil, err
		}
		v2key, err := readSecretFile(kf.APIKeyFile)
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		b.WriteString("# Throwaway WeChat Pay keys for a local stack, written by wechatpay-sim keygen.\n")
		b.WriteString("# Never use them with the real WeChat Pay. Source this file (set -a; . keys.env).\n")
		for _, kv := range [][2]string{
			{"WECHATPAY_APIV3_KEY", v3key},
			{"WECHATPAY_API_KEY", v2key},
			{"WECHATPAY_PUBLIC_KEY_FILE", kf.PublicKeyFile},
			{"WECHATPAY_PUBLIC_KEY_ID", kf.PublicKeyID},
			{"WECHATPAY_PLATFORM_CERT_DIR", kf.PlatformCertDir},
			{"WECHATPAY_MCH_PRIVATE_KEY_FILE", kf.MchPrivateKeyFile},
			{"WECHATPAY_MCH_CERT_SERIAL", kf.MchCertSerial},
			{"SIM_KEYS_DIR", kf.Dir},
		} {
			b.WriteString(kv[0] + "=" + shellQuote(kv[1]) + "\n")
		}
		return []byte(b.String()), nil
	})
	return kf, err
}

// publicKeyIDs returns the ids of the two WeChat Pay public keys: those
// already in platform/, or two new ones with the same digits ending in 01
// and 02.
func publicKeyIDs(platform string) (string, string, error) {
	matches, err := filepath.Glob(filepath.Join(platform, publicKeyPrefix+"*01"+keySuffix))
	if err != nil {
		return "", "", fmt.Errorf("keygen: %w", err)
	}
	var base string
	switch len(matches) {
	case 0:
		base = publicKeyPrefix + "0114" + randomDigits(22)
	case 1:
		id := strings.TrimSuffix(filepath.Base(matches[0]), keySuffix)
		if !publicKeyIDPattern.MatchString(id) {
			return "", "", fmt.Errorf("keygen: %s is not named PUB_KEY_ID_<digits>01%s", matches[0], keySuffix)
		}
		base = strings.TrimSuffix(id, "01")
	default:
		return "", "", fmt.Errorf("keygen: %s holds several PUB_KEY_ID_…01 keys", platform)
	}
	return base + "01", base + "02", nil
}

// platformCertSerial returns the serial of the platform certificate
// identity in platform/, or a new one.
func platformCertSerial(platform string) (string, error) {
	matches, err := filepath.Glob(filepath.Join(platform, "*"+keySuffix))
	if err != nil {
		return "", fmt.Errorf("keygen: %w", err)
	}
	var serials []string
	for _, m := range matches {
		if id := strings.TrimSuffix(filepath.Base(m), keySuffix); !strings.HasPrefix(id, publicKeyPrefix) {
			serials = append(serials, id)
		}
	}
	switch len(serials) {
	case 0:
		return newCertSerial(), nil
	case 1:
		if !certSerialPattern.MatchString(serials[0]) {
			return "", fmt.Errorf("keygen: %s: not an upper-case hex certificate serial", serials[0])
		}
		return serials[0], nil
	default:
		return "", fmt.Errorf("keygen: %s holds several platform certificate keys", platform)
	}
}

// ensureKey loads the RSA private key in path, or generates a 2048-bit one
// and writes it as PKCS #8 ("PRIVATE KEY").
func ensureKey(path string) (*rsa.PrivateKey, error) {
	if raw, err := os.ReadFile(path); err == nil {
		key, err := parsePrivateKey(raw)
		if err != nil {
			return nil, fmt.Errorf("keygen: %s: %w", path, err)
		}
		return key, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("keygen: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("keygen: generate RSA key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("keygen: encode private key: %w", err)
	}
	if err := writeNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}
	return key, nil
}

// ensureCert loads the certificate in path, which must hold key's public
// key, or writes a self-signed one with serial (upper-case hex; random when
// empty), valid for five years.
func ensureCert(path string, key *rsa.PrivateKey, serial, cn string) (*x509.Certificate, error) {
	if raw, err := os.ReadFile(path); err == nil {
		cert, err := parseCertificate(raw)
		if err != nil {
			return nil, fmt.Errorf("keygen: %s: %w", path, err)
		}
		if !key.PublicKey.Equal(cert.PublicKey) {
			return nil, fmt.Errorf("keygen: %s does not hold the public key of its private key", path)
		}
		return cert, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("keygen: %w", err)
	}
	if serial == "" {
		serial = newCertSerial()
	}
	n, ok := new(big.Int).SetString(serial, 16)
	if !ok {
		return nil, fmt.Errorf("keygen: bad certificate serial %q", serial)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          n,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"wechatpay-sim"}, Country: []string{"CN"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("keygen: create certificate: %w", err)
	}
	if err := writeNew(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// ensurePublicKey writes pub as a "PUBLIC KEY" PEM unless path exists.
func ensurePublicKey(path string, pub *rsa.PublicKey) error {
	return ensureFile(path, func() ([]byte, error) {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("keygen: encode public key: %w", err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
	})
}

// ensureFile writes content() to path unless path exists.
func ensureFile(path string, content func() ([]byte, error)) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keygen: %w", err)
	}
	b, err := content()
	if err != nil {
		return err
	}
	return writeNew(path, b)
}

// writeNew creates path with mode 0600; it never overwrites.
func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("keygen: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keygen: write %s: %w", path, err)
	}
	return nil
}

// parsePrivateKey reads an RSA key from a PKCS #8 ("PRIVATE KEY") or
// PKCS #1 ("RSA PRIVATE KEY") PEM. Its errors never quote the key.
func parsePrivateKey(raw []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("not a PKCS #8 private key")
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("not an RSA private key")
		}
		return rk, nil
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("not a PKCS #1 private key")
		}
		return k, nil
	}
	return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
}

func parseCertificate(raw []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
		return nil, errors.New("certificate holds no RSA key")
	}
	return cert, nil
}

// certSerial formats a certificate serial as WeChat and the SDK do
// (utils.GetCertificateSerialNumber): upper-case hex of its bytes.
func certSerial(c *x509.Certificate) string { return fmt.Sprintf("%X", c.SerialNumber.Bytes()) }

// newCertSerial returns 40 upper-case hex digits whose first byte is
// 0x10–0x7F, so that the number is positive and prints the same with %X of
// the bytes and of the integer.
func newCertSerial() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	b[0] = 0x10 + b[0]%0x70
	return strings.ToUpper(hex.EncodeToString(b))
}

// readSecretFile reads a one-line key file, trimming white space.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	return strings.TrimSpace(string(b)), nil
}

func randomFrom(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

func randomAlnum(n int) string {
	return randomFrom("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", n)
}

func randomDigits(n int) string { return randomFrom("0123456789", n) }

func randomHex(nbytes int) string {
	b := make([]byte, nbytes)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe
// characters.
func shellQuote(s string) string {
	safe := s != ""
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_-./:@%+=,", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
