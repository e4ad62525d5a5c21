package sim

import (
	"bytes"
	"crypto/rsa"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/payflow/payflow/wechatpay/apiv3"
)

// Keys are generated once per test binary: RSA key generation is slow.
var (
	keysOnce sync.Once
	keysDir  string
	keyFiles KeyFiles
	keysErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if keysDir != "" {
		os.RemoveAll(keysDir)
	}
	os.Exit(code)
}

func testKeys(t *testing.T) KeyFiles {
	t.Helper()
	keysOnce.Do(func() {
		if keysDir, keysErr = os.MkdirTemp("", "wechatpay-sim-keys-"); keysErr == nil {
			keyFiles, keysErr = GenerateKeys(filepath.Join(keysDir, "keys"))
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keyFiles
}

// merchant is the orchestrator's side of v3, loaded from keys.env paths.
type merchant struct {
	key  *rsa.PrivateKey
	keys *apiv3.Keys
	kf   KeyFiles
}

func newMerchant(t *testing.T) merchant {
	t.Helper()
	kf := testKeys(t)
	key, err := utils.LoadPrivateKeyWithPath(kf.MchPrivateKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := apiv3.LoadKeys(kf.PublicKeyFile, kf.PublicKeyID, kf.PlatformCertDir)
	if err != nil {
		t.Fatal(err)
	}
	return merchant{key: key, keys: keys, kf: kf}
}

func TestGenerateKeys(t *testing.T) {
	kf := testKeys(t)
	before := map[string][]byte{}
	err := filepath.WalkDir(kf.Dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", path, info.Mode().Perm())
		}
		before[path], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 12 {
		t.Errorf("%d files, want 12", len(before))
	}
	env := string(before[kf.EnvFile])
	v3key := strings.TrimSpace(string(before[kf.APIv3KeyFile]))
	v2key := strings.TrimSpace(string(before[kf.APIKeyFile]))
	if len(v3key) != 32 || len(v2key) != 32 {
		t.Fatalf("key lengths %d, %d", len(v3key), len(v2key))
	}
	for _, line := range []string{"WECHATPAY_APIV3_KEY=" + v3key, "WECHATPAY_API_KEY=" + v2key,
		"WECHATPAY_PUBLIC_KEY_FILE=" + kf.PublicKeyFile, "WECHATPAY_PUBLIC_KEY_ID=" + kf.PublicKeyID,
		"WECHATPAY_PLATFORM_CERT_DIR=" + kf.PlatformCertDir, "WECHATPAY_MCH_PRIVATE_KEY_FILE=" + kf.MchPrivateKeyFile,
		"WECHATPAY_MCH_CERT_SERIAL=" + kf.MchCertSerial, "SIM_KEYS_DIR=" + kf.Dir} {
		if !strings.Contains(env, "\n"+line+"\n") {
			t.Errorf("keys.env lacks %s", line)
		}
	}
	if !strings.HasSuffix(kf.PublicKeyID, "01") || kf.SecondPublicKeyID != strings.TrimSuffix(kf.PublicKeyID, "01")+"02" ||
		!publicKeyIDPattern.MatchString(kf.PublicKeyID) || !certSerialPattern.MatchString(kf.MchCertSerial) ||
		!certSerialPattern.MatchString(kf.PlatformCertSerial) || !filepath.IsAbs(kf.Dir) {
		t.Errorf("key files %+v", kf)
	}
	cert, err := utils.LoadCertificateWithPath(kf.MchCertFile)
	if err != nil || utils.GetCertificateSerialNumber(*cert) != kf.MchCertSerial {
		t.Errorf("merchant certificate serial: %v", err)
	}
	keys := newMerchant(t).keys
	for _, id := range []string{kf.PublicKeyID, kf.SecondPublicKeyID, kf.PlatformCertSerial} {
		if !keys.Has(id) {
			t.Errorf("LoadV3Keys of keys.env paths lacks %s", id)
		}
	}

	again, err := GenerateKeys(kf.Dir)
	if err != nil || again != kf {
		t.Fatalf("second run: %+v, %v", again, err)
	}
	for path, b := range before {
		if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, b) {
			t.Errorf("%s changed on the second run", path)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
