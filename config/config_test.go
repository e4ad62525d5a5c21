package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultsFromTheContract(t *testing.T) {
	c, err := Load(env(map[string]string{"WECHATPAY_APPID": "wx1", "WECHATPAY_MCHID": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		TemporalAddress: "127.0.0.1:7233", TemporalNamespace: "default", TaskQueue: "payments", APIAddr: "127.0.0.1:8080",
		APIVersion: "v3", BaseURL: "https://api.mch.weixin.qq.com", OrderTimeout: 30 * time.Minute, OrderQueryAfter: time.Minute,
	}
	if c.TemporalAddress != want.TemporalAddress || c.TemporalNamespace != want.TemporalNamespace || c.TaskQueue != want.TaskQueue ||
		c.APIAddr != want.APIAddr || c.APIVersion != want.APIVersion || c.BaseURL != want.BaseURL ||
		c.OrderTimeout != want.OrderTimeout || c.OrderQueryAfter != want.OrderQueryAfter {
		t.Fatalf("config = %+v", c)
	}
	if c.DatabaseURL.Reveal() != "postgres://postgres@127.0.0.1:5432/payments?sslmode=disable" {
		t.Fatalf("DATABASE_URL = %q", c.DatabaseURL.Reveal())
	}
}

func TestBadInputIsReported(t *testing.T) {
	_, err := Load(env(map[string]string{
		"WECHATPAY_API_VERSION": "v4", "ORDER_TIMEOUT": "soon", "ORDER_QUERY_AFTER": "-1s", "WECHATPAY_APIV3_KEY": "short",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"WECHATPAY_APPID", "WECHATPAY_MCHID", "WECHATPAY_API_VERSION", "ORDER_TIMEOUT", "ORDER_QUERY_AFTER", "WECHATPAY_APIV3_KEY must be 32 bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "short") {
		t.Errorf("error %q shows the key", err)
	}
	_, err = Load(env(map[string]string{"WECHATPAY_APPID": "wx1", "WECHATPAY_MCHID": "1", "WECHATPAY_API_VERSION": "v2"}))
	if err == nil || !strings.Contains(err.Error(), "WECHATPAY_API_KEY is required") {
		t.Fatalf("v2 without a key: %v", err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	const key = "192006250b4c09247ec02edce69f6a2d"
	c, err := Load(env(map[string]string{"WECHATPAY_APPID": "wx1", "WECHATPAY_MCHID": "1", "WECHATPAY_API_KEY": key,
		"DATABASE_URL": "postgres://u:hunter2@db/payments"}))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("config", "cfg", c, "key", c.APIKey)
	j, _ := json.Marshal(c)
	for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%v", c.APIKey), b.String(), string(j)} {
		if strings.Contains(out, key) || strings.Contains(out, "hunter2") {
			t.Fatalf("a secret is printed: %s", out)
		}
	}
	if c.APIKey.Reveal() != key {
		t.Fatal("Reveal lost the key")
	}
}

// The capacity settings: NOTIFY_MAX_IN_FLIGHT defaults to 32 and
// NOTIFY_SHED_BACKLOG to 50 (0 turns either off); WORKER_MAX_* default to 0 (the SDK's own), the pollers to 8
// and the sticky timeout to 30 s (measured under overload), and what the
// SDK refuses (1 poller, 1 task) is an error at start, not a panic later.
func TestCapacitySettings(t *testing.T) {
	base := map[string]string{"WECHATPAY_APPID": "wx1", "WECHATPAY_MCHID": "1"}
	c, err := Load(env(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.NotifyMaxInFlight != DefaultNotifyMaxInFlight || c.NotifyShedBacklog != 50 || c.WorkerWorkflowTasks != 0 || c.WorkerLocalActivities != 0 ||
		c.WorkerWorkflowPollers != 8 || c.WorkerStickyTimeout != 30*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	set := map[string]string{"NOTIFY_MAX_IN_FLIGHT": "0", "NOTIFY_SHED_BACKLOG": "0", "WORKER_MAX_WORKFLOW_TASKS": "64", "WORKER_MAX_LOCAL_ACTIVITIES": "128",
		"WORKER_WORKFLOW_POLLERS": "8", "WORKER_STICKY_TIMEOUT": "10s"}
	for k, v := range base {
		set[k] = v
	}
	if c, err = Load(env(set)); err != nil {
		t.Fatal(err)
	}
	if c.NotifyMaxInFlight != 0 || c.NotifyShedBacklog != 0 || c.WorkerWorkflowTasks != 64 || c.WorkerLocalActivities != 128 || c.WorkerWorkflowPollers != 8 ||
		c.WorkerStickyTimeout != 10*time.Second {
		t.Fatalf("set: %+v", c)
	}
	bad := map[string]string{"NOTIFY_MAX_IN_FLIGHT": "-1", "NOTIFY_SHED_BACKLOG": "some", "WORKER_MAX_WORKFLOW_TASKS": "1", "WORKER_WORKFLOW_POLLERS": "many",
		"WORKER_STICKY_TIMEOUT": "0s"}
	for k, v := range base {
		bad[k] = v
	}
	_, err = Load(env(bad))
	for _, want := range []string{"NOTIFY_MAX_IN_FLIGHT", "NOTIFY_SHED_BACKLOG", "WORKER_MAX_WORKFLOW_TASKS", "WORKER_WORKFLOW_POLLERS", "WORKER_STICKY_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}
