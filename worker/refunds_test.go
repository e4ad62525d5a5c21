package worker

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/sim"
	"github.com/payflow/payflow/wechatpay/apiv2"
	"github.com/payflow/payflow/wechatpay/apiv3"
)

func TestNewRefundsAPI(t *testing.T) {
	kf, err := sim.GenerateKeys(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	v3 := config.Config{AppID: "wx1", MchID: "1230000109", APIVersion: "v3", BaseURL: "http://127.0.0.1:1",
		MchPrivateKeyFile: kf.MchPrivateKeyFile, MchCertSerial: kf.MchCertSerial, PublicKeyFile: kf.PublicKeyFile, PublicKeyID: kf.PublicKeyID}

	// v3: the order client asks for refunds too.
	orders, err := NewWeChat(t.Context(), v3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewRefundsAPI(t.Context(), v3, orders, nil)
	if c, ok := got.(*apiv3.Client); err != nil || !ok || c != orders.(*apiv3.Client) {
		t.Fatalf("v3: %v %v, want the order client", got, err)
	}

	// v2 with v3 credentials: refunds through a v3 client of their own.
	v2 := v3
	v2.APIVersion, v2.APIKey = "v2", config.NewSecret("192006250b4c09247ec02edce69f6a2d")
	orders, err = NewWeChat(t.Context(), v2)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := orders.(*apiv2.Client); !ok {
		t.Fatalf("v2 order client is %T", orders)
	}
	got, err = NewRefundsAPI(t.Context(), v2, orders, nil)
	if c, ok := got.(*apiv3.Client); err != nil || !ok || c == nil {
		t.Fatalf("v2 with v3 credentials: %T %v", got, err)
	}

	// v2 alone: refunds unavailable, a true nil.
	bare := config.Config{AppID: "wx1", MchID: "1230000109", APIVersion: "v2", APIKey: v2.APIKey, BaseURL: "http://127.0.0.1:1"}
	orders, _ = NewWeChat(t.Context(), bare)
	if got, err := NewRefundsAPI(t.Context(), bare, orders, nil); err != nil || got != nil {
		t.Fatalf("v2 alone: %v %v, want nil", got, err)
	}

	// Credentials named but unloadable: an error at start, never a silent nil.
	broken := v2
	broken.MchPrivateKeyFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := NewRefundsAPI(t.Context(), broken, orders, nil); err == nil || !strings.Contains(err.Error(), "WECHATPAY_MCH_PRIVATE_KEY_FILE") {
		t.Fatalf("broken credentials: %v", err)
	}
}
