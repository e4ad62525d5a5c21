// Command wechatpay-sim is a local stand-in for WeChat Pay: it answers
// WeChat's API paths (v2 XML and v3 JSON) for one merchant and sends
// payment notifications on an operator's request. See package sim for the
// endpoints.
//
// Usage:
//
//	wechatpay-sim                 serve (configuration from the environment)
//	wechatpay-sim keygen -dir DIR write throwaway keys and DIR/keys.env for a local stack
//
// Configuration (environment): SIM_ADDR (127.0.0.1:8090), WECHATPAY_APPID,
// WECHATPAY_MCHID, WECHATPAY_API_KEY (optional with SIM_KEYS_DIR),
// SIM_NOTIFY_URL (http://127.0.0.1:8080/wechatpay/notify), SIM_TIME_SCALE
// (1), SIM_QUERY_DELAY (0), SIM_REFUND_PROCESSING (10s), SIM_REFUND_NOTIFY_URL
// (SIM_NOTIFY_URL), SIM_KEYS_DIR (API v3; the keygen directory),
// WECHATPAY_APIV3_KEY (overrides SIM_KEYS_DIR/apiv3_key), SIM_PLATFORM_KEY
// (the PUB_KEY_ID_…01 key), SIM_NOTIFY_URL_V3
// (http://127.0.0.1:8080/wechatpay/v3/notify), SIM_NOTIFY_VERSION (v2),
// SIM_DROP_NOTIFICATIONS (false), SIM_FAULTS (0: the rate of random
// faults), SIM_FAULT_SEED (from the clock; printed at start, for a replay),
// SIM_FAULT_CALLS and SIM_FAULT_KINDS (all).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/payflow/payflow/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("wechatpay-sim stopped", "error", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "keygen":
			return keygen(args[1:], stdout)
		default:
			return fmt.Errorf("unknown command %q (want no command, or keygen -dir DIR)", args[0])
		}
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := sim.LoadConfig(os.Getenv)
	if err != nil {
		return err
	}
	return sim.Run(ctx, cfg, log)
}

// keygen writes the keys and prints where they are; no secret is printed.
func keygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory to write the keys to (created if missing; existing files are kept)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 {
		return errors.New("usage: wechatpay-sim keygen -dir DIR")
	}
	kf, err := sim.GenerateKeys(*dir)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "keys in %s\n  merchant certificate serial %s\n  WeChat Pay public keys %s (primary), %s\n  platform certificate %s\nsource %s (set -a; . %s) for the api, worker and simulator\n",
		kf.Dir, kf.MchCertSerial, kf.PublicKeyID, kf.SecondPublicKeyID, kf.PlatformCertSerial, kf.EnvFile, kf.EnvFile)
	return err
}
